"""The caseload in Chromium: a real ``outcomes serve`` in development mode on loopback, signed
in through the sign-in page with one click, the caseload's rows, no axe-core violation, and the
keyboard: the skip link first, then the first filter control."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import axe_violations
from playwright.sync_api import Page, expect
from served import call, serving

from api.auth import DevIssuer

pytestmark = pytest.mark.ui


def test_a_dev_clinician_signs_in_and_the_caseload_is_accessible(page: Page, tmp_path: Path) -> None:
    with serving(tmp_path, {"OUTCOMES_OVERDUE_SWEEP_INTERVAL": "0"}, workers=1) as server:
        lee = DevIssuer(tmp_path / "dev-issuer.key").mint(
            sub="dr-lee", roles=["clinician"], clinics=["clinic-north"], ttl=600)
        as_lee = {"Authorization": f"Bearer {lee}"}
        for ref, items in (("pt-calm", [1, 1, 1, 1, 1, 1, 1, 1, 0]), ("pt-safety", [2] * 8 + [1])):
            status, _, opened = call(server, "POST", "/episodes", {
                "patient_ref": ref, "clinic_id": "clinic-north", "opened_on": "2026-01-05"},
                headers=as_lee)
            assert status == 201 and isinstance(opened, dict)
            status, _, _ = call(server, "POST", f"/episodes/{opened['episode_id']}/assessments",
                                {"instrument": "PHQ-9", "administered_on": "2026-01-05",
                                 "items": items}, headers=as_lee)
            assert status == 201
        base = f"http://127.0.0.1:{server.port}"

        page.goto(f"{base}/ui/sign-in")
        page.get_by_role("button", name="Sign in as dr-lee").click()
        expect(page).to_have_url(f"{base}/ui/clinics/clinic-north/caseload")
        expect(page.get_by_role("heading", level=1)).to_have_text("Caseload of clinic-north")
        expect(page.locator("tbody th[scope=row]")).to_have_text(["pt-safety", "pt-calm"])
        expect(page.locator("tbody tr").first).to_contain_text("Safety alert")
        assert axe_violations(page) == []

        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        expect(page.get_by_label("Unresolved alert")).to_be_focused()
        # the focus is visible: the stylesheet's :focus-visible outline, not the browser's
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline == "solid"
        # without the skip link too: Tab through the header (brand, nav, sign-out) to it
        page.reload()
        focused = []
        for _ in range(8):
            page.keyboard.press("Tab")
            focused.append(page.evaluate("() => document.activeElement.id || document.activeElement.tagName"))
            if focused[-1] == "f-kind":
                break
        assert focused[-1] == "f-kind", focused
