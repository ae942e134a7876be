"""The browser tests' fixtures (tests/ui): Debian's Chromium (``/usr/bin/chromium``) driven by
Playwright's sync API, launched by its executable path, so nothing is downloaded at test time
(Playwright's own browsers are never installed: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1), and axe-core
(``ui/node_modules``, pinned by ``ui/package-lock.json``, installed by ``make .venv/.dev``).

Without ``/usr/bin/chromium`` a ui test is skipped, saying so, except under ``CI=true``: there
``.ci/run`` has installed it, and a missing browser is a failure, never a silent skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, sync_playwright

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "ui" / "node_modules" / "axe-core" / "axe.min.js"
# No GPU, no sandbox (root in CI's container), and none of the background fetches Chromium makes
# on its own (component updates, sync, first-run pages): the tests talk to loopback only.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Fontconfig for the browser: the machine's, with DejaVu preferred for the generic families
# (tests/ui/fonts.conf), so a machine with other fonts draws the screenshots' pages alike.
FONTS_ENV = {**os.environ, "FONTCONFIG_FILE": str(Path(__file__).with_name("fonts.conf"))}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_browser() -> None:
    """Skip (outside CI) or fail (under CI=true) when Chromium or axe-core is not installed."""
    missing = [str(path) for path in (CHROMIUM, AXE) if not path.exists()]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (apt-get install chromium; make .venv/.dev)"
    if in_ci():
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    require_browser()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium per test module."""
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                          env=FONTS_ENV)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no cookies, no storage) and page per test, at a fixed viewport."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (``axe.run()`` on the whole document)."""
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate("async () => (await axe.run()).violations")
    return violations
