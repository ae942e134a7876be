"""The episode page in Chromium: a real ``outcomes serve`` in development mode, the README's
scenario with a safety alert, no axe-core violation (as a clinician, with the record form's
errors shown, and as an auditor), and the forms work with JavaScript off semantics (plain POST)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_helpers import axe_violations
from playwright.sync_api import Page, expect
from served import call, serving

from api.auth import DevIssuer

pytestmark = pytest.mark.ui
SCENARIO = [("2026-01-05", 18), ("2026-01-12", 16), ("2026-01-19", 13), ("2026-01-26", 8),
            ("2026-02-02", 6), ("2026-02-09", 4), ("2026-02-16", 3), ("2026-02-23", 4),
            ("2026-03-02", 2)]


def test_the_episode_page_is_accessible_and_its_forms_work(page: Page, tmp_path: Path) -> None:
    with serving(tmp_path, {"OUTCOMES_OVERDUE_SWEEP_INTERVAL": "0"}, workers=1) as server:
        lee = DevIssuer(tmp_path / "dev-issuer.key").mint(
            sub="dr-lee", roles=["clinician"], clinics=["clinic-north"], ttl=600)
        as_lee = {"Authorization": f"Bearer {lee}"}
        status, _, opened = call(server, "POST", "/episodes", {
            "patient_ref": "pt-7f3a", "clinic_id": "clinic-north", "criteria": "acnp2006",
            "opened_on": "2026-01-05"}, headers=as_lee)
        assert status == 201 and isinstance(opened, dict)
        episode = opened["episode_id"]
        for on, total in SCENARIO:
            status, _, _ = call(server, "POST", f"/episodes/{episode}/assessments", {
                "instrument": "PHQ-9", "administered_on": on, "total": total}, headers=as_lee)
            assert status == 201
        status, _, _ = call(server, "POST", f"/episodes/{episode}/assessments", {
            "instrument": "PHQ-9", "administered_on": "2026-03-09",
            "items": [0, 0, 0, 0, 0, 0, 0, 0, 1]}, headers=as_lee)
        assert status == 201
        base = f"http://127.0.0.1:{server.port}"

        page.goto(f"{base}/ui/sign-in")
        page.get_by_role("button", name="Sign in as dr-lee").click()
        page.goto(f"{base}/ui/episodes/{episode}")
        expect(page.locator("#summary")).to_contain_text("PHQ-9 fell from 18 to 1 over 9 weeks")
        expect(page.get_by_role("img", name="PHQ-9 scores by date")).to_be_visible()
        assert axe_violations(page) == []
        if os.environ.get("EPISODE_SCREENSHOT"):
            page.screenshot(path=os.environ["EPISODE_SCREENSHOT"], full_page=True)

        page.get_by_label("Item 4 (0–3)").fill("4")
        page.get_by_label("Administered on").fill("2026-03-09")
        page.get_by_role("button", name="Record assessment").click()
        expect(page.locator("#form-errors")).to_contain_text("item 4 must be a whole number")
        expect(page.locator("#f-item_4")).to_have_attribute("aria-invalid", "true")
        assert axe_violations(page) == []

        article = page.locator("article.alert").first
        article.get_by_label("Note").fill("called")
        article.get_by_role("button", name="Acknowledge").click()
        expect(page.locator("article.alert").first).to_contain_text("Acknowledged")

        page.goto(f"{base}/ui/sign-in")
        page.get_by_role("button", name="Sign in as auditor-ng").click()
        page.goto(f"{base}/ui/episodes/{episode}")
        expect(page.locator("#audit table")).to_be_visible()
        assert axe_violations(page) == []
