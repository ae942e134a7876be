"""The clinician's day end to end in Chromium on a seeded live server (scenario_helpers): dr-lee
signs in through the sign-in page, opens the caseload (the safety alert first), the README's
scenario episode (its summary, chart and decisions), acknowledges the off-track episode's alert
through its form, records the README's late paper form (PHQ-9 7 on 2026-02-20) and sees the
full remission retracted; res-park opens the re-scoring run and one changed episode's before and
after. Each step is what a user sees; the store is read only through the pages."""

from __future__ import annotations

import re

import pytest
from browser_helpers import axe_violations
from playwright.sync_api import Browser, Page, expect
from scenario_helpers import (
    CLINIC,
    OFF_TRACK_EPISODE,
    RUN_ID,
    SCENARIO_EPISODE,
    Live,
    live_fixture,  # noqa: F401  (the fixture "live")
    sign_in,
)

pytestmark = pytest.mark.ui
ACNP_HASH = "9a32a58c03653ca7a79532bf8d48ec9b1948f368df88c8e409d05a2ab0290aec"


def test_dr_lee_signs_in_and_the_caseload_lists_the_safety_alert_first(page: Page, live: Live) -> None:
    page.goto(live.url("/ui/sign-in"))
    page.get_by_role("button", name="Sign in as dr-lee").click()
    expect(page).to_have_url(live.url(f"/ui/clinics/{CLINIC}/caseload"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Caseload of {CLINIC}")
    expect(page.locator("tbody th[scope=row]")).to_have_text(
        ["pt-2b8e", "pt-91c2", "pt-4d10", "pt-7f3a"])
    rows = page.locator("tbody tr")
    expect(rows.nth(0)).to_contain_text("Safety alert")
    expect(rows.nth(1)).to_contain_text("Off track")
    expect(rows.nth(2)).to_contain_text("Overdue")


def test_the_scenario_episode_shows_its_summary_chart_and_decisions(page: Page, live: Live) -> None:
    sign_in(page, live, "dr-lee")
    page.get_by_role("link", name="pt-7f3a").click()
    expect(page).to_have_url(live.url(f"/ui/episodes/{SCENARIO_EPISODE}"))
    summary = page.locator("#main #summary")
    expect(summary).to_contain_text("PHQ-9 fell from 18 to 2")
    expect(summary).to_contain_text("26 Jan 2026")
    # the summary opens the page: the first thing in main after the heading
    first = page.evaluate("() => [...document.querySelectorAll('#main > *')]"
                          ".filter(e => e.tagName !== 'H1')[0].id")
    assert first == "summary"
    chart = page.locator("figure#chart-phq-9")
    expect(chart.locator("svg[role=img]")).to_have_count(1)
    expect(chart.locator("figcaption")).not_to_be_empty()
    expect(page.locator("#table-phq-9 tbody tr")).to_have_count(9)
    decisions = page.locator("#decisions ol > li")
    expect(decisions).to_have_count(2)
    expect(decisions.nth(0)).to_contain_text("PHQ-9 fell from 18 to 8 (56% ≥ 50%) on 2026-01-26")
    expect(decisions.nth(1)).to_contain_text("full remission under acnp2006 v1.0.0")
    for n in range(2):
        expect(decisions.nth(n)).to_contain_text("acnp2006")
        expect(decisions.nth(n)).to_contain_text(ACNP_HASH[:12])
        expect(decisions.nth(n).locator(f"code[title='{ACNP_HASH}']")).to_have_count(1)


def test_dr_lee_acknowledges_the_off_track_alert_through_its_form(page: Page, live: Live) -> None:
    sign_in(page, live, "dr-lee")
    page.get_by_role("link", name="pt-91c2").click()
    expect(page).to_have_url(live.url(f"/ui/episodes/{OFF_TRACK_EPISODE}"))
    alert = page.locator("#alerts article", has_text="Off track")
    expect(alert).to_have_count(1)
    expect(alert).to_contain_text("PHQ-9 18 at week 4 is at or above 17")
    form = alert.locator("form[action$='/acknowledge']")
    form.locator("select[name=action]").select_option("reviewed_in_session")
    form.locator("textarea[name=note]").fill("discussed homework")
    form.get_by_role("button", name="Acknowledge").click()
    expect(page).to_have_url(re.compile(re.escape(live.url(f"/ui/episodes/{OFF_TRACK_EPISODE}"))))
    alert = page.locator("#alerts article", has_text="Off track")
    expect(alert).to_contain_text(re.compile("acknowledged", re.IGNORECASE))
    expect(alert).to_contain_text("dr-lee")
    expect(alert.locator("form[action$='/acknowledge']")).to_have_count(0)  # not twice
    expect(alert.locator("form[action$='/resolve']")).to_have_count(1)  # open until resolved
    assert axe_violations(page) == []


def fill_phq9(page: Page, on: str, total: int) -> None:
    """Fill the record form with a PHQ-9 of ``total``: the total field, or items adding up to it
    (item 9 answered 0)."""
    form = page.locator("form#record-assessment")
    form.locator("input[name=administered_on]").fill(on)
    if form.locator("input[name=total]").count():
        form.locator("input[name=total]").fill(str(total))
        return
    for n in range(1, 10):
        form.locator(f"input[name=item_{n}]").fill(str(min(3, max(0, total - 3 * (n - 1))) if n < 9
                                                       else 0))


def test_a_bad_assessment_is_shown_in_place_and_the_late_form_retracts_the_remission(
        page: Page, live: Live) -> None:
    sign_in(page, live, "dr-lee")
    page.goto(live.url(f"/ui/episodes/{SCENARIO_EPISODE}"))
    # a date in the future (the clock's today is 2026-03-09): errors in place, nothing recorded
    fill_phq9(page, "2026-04-01", 7)
    with page.expect_response(lambda r: r.url.endswith("/assessments")) as answer:
        page.get_by_role("button", name="Record assessment").click()
    assert answer.value.status == 422
    expect(page.locator("#form-errors[role=alert]")).to_be_visible()
    bad = page.locator("form#record-assessment [aria-invalid=true]")
    expect(bad).not_to_have_count(0)
    described = bad.first.get_attribute("aria-describedby")
    assert described and described.startswith("err-")
    expect(page.locator(f"#{described}")).not_to_be_empty()
    assert axe_violations(page) == []  # the page with its errors in place
    expect(page.locator("#decisions ol > li")).to_have_count(2)

    page.goto(live.url(f"/ui/episodes/{SCENARIO_EPISODE}"))
    fill_phq9(page, "2026-02-20", 7)
    page.get_by_role("button", name="Record assessment").click()
    expect(page).to_have_url(re.compile(r"\?recorded="))
    expect(page.locator("#flash[role=status]")).to_be_visible()
    assert axe_violations(page) == []
    expect(page.locator("#table-phq-9 tbody tr")).to_have_count(10)
    decisions = page.locator("#decisions ol > li")
    expect(decisions).to_have_count(1)  # the remission no longer holds
    expect(decisions.first).to_contain_text("response under acnp2006 v1.0.0")

    page.get_by_label(re.compile("retracted", re.IGNORECASE)).check()
    page.locator("#chart-options").get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"retracted=1"))
    decisions = page.locator("#decisions ol > li")
    expect(decisions).to_have_count(2)
    retracted = page.locator("#decisions ol > li", has_text="full remission")
    expect(retracted).to_contain_text(re.compile("retracted", re.IGNORECASE))


def test_res_park_opens_the_rescoring_run_and_a_changed_episodes_before_and_after(
        browser: Browser, live: Live) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        sign_in(page, live, "res-park")
        page.goto(live.url(f"/ui/rescorings/{RUN_ID}"))
        expect(page.get_by_role("heading", level=1)).to_contain_text("frank1991")
        expect(page.locator("#run")).to_contain_text("completed")
        compare = page.locator("#rates-compare")
        expect(compare.locator("tr", has_text="Partial remission")).to_contain_text("+40.0 points")
        changes = page.locator("#changes tbody tr")
        expect(changes).to_have_count(4)
        changes.get_by_role("link", name=str(SCENARIO_EPISODE)).click()
        expect(page).to_have_url(live.url(f"/ui/rescorings/{RUN_ID}/episodes/{SCENARIO_EPISODE}"))
        before, after = page.locator("section#before"), page.locator("section#after")
        expect(before).to_contain_text("acnp2006")
        expect(before).to_contain_text(re.compile("moved to 2026-02-23", re.IGNORECASE))
        expect(after).to_contain_text(re.compile("partial remission", re.IGNORECASE))
        expect(after).to_contain_text(re.compile("added", re.IGNORECASE))
    finally:
        context.close()
