"""Screenshots of the pages compared with the committed baselines (``docs/screenshots/<page>.png``,
also shown in the README).

A screenshot is the full page in Debian's Chromium at 1280x800 CSS pixels (scale 1), reduced
motion, light colour scheme, no caret, font hinting off (``--font-render-hinting=none``), with
the fonts fontconfig picks for the stylesheet's ``system-ui, sans-serif``: DejaVu Sans from
fonts-dejavu-core, which ``.ci/run`` installs (``require_dejavu`` skips, or fails under CI=true,
when fontconfig picks another font: the baselines would not match).

``compare`` counts the pixels whose largest channel difference exceeds ``CHANNEL_THRESHOLD``
(of 255); more than ``MAX_DIFFERING`` of the page's pixels (a fraction: 0.005 = 0.5 %), or
another size, fails, writing the actual screenshot and a diff image (differing pixels red over
a faded actual) into the test's folder and naming them. With ``OUTCOMES_UPDATE_SCREENSHOTS=1``
it rewrites the baseline instead (``make screenshots``, ``scripts/ui-screenshots.py``)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from io import BytesIO
from pathlib import Path

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, FONTS_ENV, VIEWPORT, in_ci
from PIL import Image, ImageChops
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Playwright

ROOT = Path(__file__).parents[2]
BASELINES = ROOT / "docs" / "screenshots"
CHANNEL_THRESHOLD = 24  # of 255, per channel: anti-aliasing noise, not a changed page
MAX_DIFFERING = 0.005  # fraction of the page's pixels
SCREENSHOT_ARGS = [*CHROMIUM_ARGS, "--font-render-hinting=none", "--force-color-profile=srgb"]
UPDATE = "OUTCOMES_UPDATE_SCREENSHOTS"


def updating() -> bool:
    """True when ``OUTCOMES_UPDATE_SCREENSHOTS=1``: write baselines instead of comparing."""
    return os.environ.get(UPDATE) == "1"


def require_dejavu() -> None:
    """Skip (outside CI) or fail (CI=true) unless ``fc-match`` picks DejaVu Sans for both
    ``sans-serif`` and ``system-ui`` (the stylesheet's fonts)."""
    picked = {}
    for family in ("sans-serif", "system-ui"):
        try:
            found = subprocess.run(["fc-match", "-f", "%{family}", family], capture_output=True,
                                   text=True, check=True, timeout=30, env=FONTS_ENV).stdout
        except (OSError, subprocess.SubprocessError):
            found = ""
        picked[family] = found
    if all("DejaVu Sans" in found for found in picked.values()):
        return
    reason = f"screenshots need DejaVu Sans (fonts-dejavu-core) as sans-serif; fc-match: {picked}"
    if in_ci():
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module", name="shot_browser")
def shot_browser_fixture(playwright: Playwright) -> Iterator[Browser]:
    """Chromium launched for stable screenshots (no font hinting, sRGB), once per module."""
    require_dejavu()
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=SCREENSHOT_ARGS,
                                          env=FONTS_ENV)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture(name="shot_page")
def shot_page_fixture(shot_browser: Browser) -> Iterator[Page]:
    """A page of a fresh context at 1280x800, scale 1, reduced motion, light scheme, UTC."""
    context: BrowserContext = shot_browser.new_context(
        viewport=VIEWPORT, device_scale_factor=1, reduced_motion="reduce",
        color_scheme="light", locale="en-GB", timezone_id="UTC")
    try:
        yield context.new_page()
    finally:
        context.close()


def differing_fraction(baseline: Image.Image, actual: Image.Image,
                       threshold: int = CHANNEL_THRESHOLD) -> tuple[float, Image.Image]:
    """The fraction of pixels whose largest channel difference exceeds ``threshold`` (0..255),
    and the mask of them (mode "L", 255 where they differ). Both images the same size."""
    difference = ImageChops.difference(baseline.convert("RGB"), actual.convert("RGB"))
    channels = difference.split()
    largest = channels[0]
    for channel in channels[1:]:
        largest = ImageChops.lighter(largest, channel)
    mask = largest.point(lambda value: 255 if value > threshold else 0)
    histogram = mask.histogram()
    total = actual.width * actual.height
    return histogram[255] / total, mask


def diff_image(actual: Image.Image, mask: Image.Image) -> Image.Image:
    """The actual screenshot faded to 30 %, the differing pixels (``mask``) in red."""
    faded = Image.blend(Image.new("RGB", actual.size, "white"), actual.convert("RGB"), 0.3)
    faded.paste(Image.new("RGB", actual.size, (255, 0, 0)), mask=mask)
    return faded


def compare(page: Page, name: str, out: Path, *, mask: Sequence[Locator] = (),
            max_differing: float = MAX_DIFFERING) -> None:
    """Compare the full-page screenshot of ``page`` with ``docs/screenshots/<name>.png``
    (module docstring); ``mask``: locators painted over in both (nothing of ours changes from
    run to run today). Raises AssertionError naming the written actual and diff files in
    ``out`` when they differ, or when there is no baseline."""
    page.evaluate("() => document.fonts.ready.then(() => true)")
    png = page.screenshot(full_page=True, animations="disabled", caret="hide", mask=list(mask),
                          scale="css")
    baseline_path = BASELINES / f"{name}.png"
    if updating():
        BASELINES.mkdir(parents=True, exist_ok=True)
        baseline_path.write_bytes(png)
        return
    actual = Image.open(BytesIO(png))
    out.mkdir(parents=True, exist_ok=True)
    actual_path, diff_path = out / f"{name}.actual.png", out / f"{name}.diff.png"
    if not baseline_path.exists():
        actual_path.write_bytes(png)
        raise AssertionError(f"no baseline {baseline_path.relative_to(ROOT)}; the actual is "
                             f"{actual_path} (make screenshots writes the baselines)")
    baseline = Image.open(baseline_path)
    if baseline.size != actual.size:
        actual_path.write_bytes(png)
        raise AssertionError(f"{name}: the page is {actual.size[0]}x{actual.size[1]} px, the "
                             f"baseline {baseline.size[0]}x{baseline.size[1]}; actual: {actual_path}")
    fraction, differing = differing_fraction(baseline, actual)
    if fraction > max_differing:
        actual_path.write_bytes(png)
        diff_image(actual, differing).save(diff_path)
        raise AssertionError(f"{name}: {fraction:.2%} of the pixels differ from "
                             f"{baseline_path.relative_to(ROOT)} (at most {max_differing:.2%}); "
                             f"actual: {actual_path}, diff: {diff_path}")
