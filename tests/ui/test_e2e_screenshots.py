"""Screenshots of the pages (full page, 1280x800, Debian's Chromium, DejaVu Sans) on a freshly
seeded live server, compared with the committed baselines docs/screenshots/<page>.png, which
the README shows (screenshot_helpers: a pixel differs when a channel moves by more than 24 of
255; at most 0.5 % of the pixels may). ``make screenshots`` rewrites the baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page
from scenario_helpers import Live, live_fixture, visit  # noqa: F401  (the fixture "live")
from screenshot_helpers import compare, shot_browser_fixture, shot_page_fixture  # noqa: F401

pytestmark = pytest.mark.ui
# The pages the README shows, in its order (scenario_helpers.PAGES names)
SHOTS = ["sign-in", "caseload", "episode", "outcomes", "rescoring", "rescoring-episode",
         "criteria"]


@pytest.mark.parametrize("name", SHOTS)
def test_the_page_looks_as_its_committed_screenshot(shot_page: Page, live: Live, name: str,
                                                    tmp_path: Path) -> None:
    assert visit(shot_page, live, name) == 200
    compare(shot_page, name, tmp_path)
