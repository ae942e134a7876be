"""Every page of the seeded live server (scenario_helpers.PAGES: sign-in, caseload, the episode
page plain, with its options, with open alerts and as the auditor sees it, outcomes, re-scoring
run and run episode, criteria, an error page) in Chromium, each signed in as its reader: no
axe-core violation, nothing wider than the 1280 px window; Tab reaches the skip link first and
every form control Tab reaches shows a focus outline of 2 px or more; and the same page with
JavaScript disabled is the same page (it has no script and needs none: its heading, main
landmark and forms are there)."""

from __future__ import annotations

import pytest
from browser_helpers import VIEWPORT, axe_violations
from playwright.sync_api import Browser, Page, expect
from scenario_helpers import (
    PAGES,
    Live,
    invisible_focus,
    live_fixture,  # noqa: F401  (the fixture "live")
    skip_link_first,
    tab_through,
    visit,
)

pytestmark = pytest.mark.ui
STATUS = {"not-found": 404}
# The id each page's main content is known by (the contract's), to tell the page is all there
LANDMARK = {"sign-in": "form", "caseload": "table", "episode": "#summary",
            "episode-options": "#summary", "episode-alerts": "#alerts form",
            "episode-audit": "#audit table", "outcomes": "#rates",
            "rescoring": "#rates-compare", "rescoring-episode": "#after",
            "criteria": "#criteria", "not-found": "h1"}


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_has_no_axe_violation_and_a_keyboard_path(page: Page, live: Live,
                                                             name: str) -> None:
    assert visit(page, live, name) == STATUS.get(name, 200)
    expect(page.locator("main#main h1")).to_have_count(1)
    expect(page.locator(LANDMARK[name]).first).to_be_visible()
    assert axe_violations(page) == []
    # nothing wider than the 1280 px window: no sideways scrolling
    assert page.evaluate("() => document.documentElement.scrollWidth") <= VIEWPORT["width"]
    page.reload()
    skip_link_first(page)
    assert invisible_focus(page) == []


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_works_with_javascript_disabled(browser: Browser, live: Live, name: str) -> None:
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    try:
        page = context.new_page()
        assert visit(page, live, name) == STATUS.get(name, 200)
        expect(page.locator("main#main h1")).to_have_count(1)
        expect(page.locator(LANDMARK[name]).first).to_be_visible()
        assert page.locator("script").count() == 0
        for form in page.locator("form").all():  # every form posts or gets by itself
            assert (form.get_attribute("method") or "get").lower() in ("get", "post")
            assert form.get_by_role("button").count() >= 1
    finally:
        context.close()


def test_the_record_form_works_with_javascript_disabled(browser: Browser, live: Live) -> None:
    """A POST form without JavaScript: an error re-renders the form in place (422)."""
    context = browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    try:
        page = context.new_page()
        visit(page, live, "episode-alerts")
        form = page.locator("form#record-assessment")
        form.locator("input[name=administered_on]").fill("2026-03-09")
        with page.expect_response(lambda r: r.url.endswith("/assessments")) as answer:
            form.get_by_role("button", name="Record assessment").click()
        assert answer.value.status == 422  # no score given
        expect(page.locator("#form-errors[role=alert]")).to_be_visible()
    finally:
        context.close()


def test_the_forms_controls_show_their_focus_as_tab_reaches_them(page: Page, live: Live) -> None:
    """On the episode page with open alerts, Tab reaches the acknowledge, resolve and record
    forms' controls (not only the header's), each with a visible outline."""
    visit(page, live, "episode-alerts")
    reached = {f.get("name") for f in tab_through(page) if f["tag"] in
               ("INPUT", "SELECT", "TEXTAREA", "BUTTON")}
    assert {"action", "note", "reason", "administered_on"} <= reached, reached
    assert invisible_focus(page) == []
