"""The clinic outcomes, re-scoring run, before/after and criteria pages in Chromium: a real
``outcomes serve`` in development mode on loopback, a researcher signed in with one click, each
page's landmarks and no axe-core violation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import axe_violations
from playwright.sync_api import Page, expect
from served import Served, call, serving

from api.auth import DevIssuer

pytestmark = pytest.mark.ui
ROWS = {"recovers": [("2026-01-05", 18), ("2026-01-19", 12), ("2026-02-02", 6),
                     ("2026-02-16", 4), ("2026-03-02", 3)],
        "relapses": [("2026-01-05", 18), ("2026-01-19", 12), ("2026-02-02", 9),
                     ("2026-02-16", 9), ("2026-03-02", 11)]}


def given_a_clinic(server: Served, headers: dict[str, str]) -> list[str]:
    """Two frank1991 episodes of clinic-north, discharged in March 2026."""
    ids = []
    for ref, rows in ROWS.items():
        status, _, opened = call(server, "POST", "/episodes", {
            "patient_ref": ref, "clinic_id": "clinic-north", "opened_on": "2026-01-05",
            "criteria": "frank1991"}, headers=headers)
        assert status == 201 and isinstance(opened, dict)
        for on, total in rows:
            status, _, _ = call(server, "POST", f"/episodes/{opened['episode_id']}/assessments",
                                {"instrument": "PHQ-9", "administered_on": on, "total": total},
                                headers=headers)
            assert status == 201
        status, _, _ = call(server, "POST", f"/episodes/{opened['episode_id']}/close",
                            {"discharged_on": "2026-03-09"}, headers=headers)
        assert status == 200, status
        ids.append(opened["episode_id"])
    return ids


def finished_run(server: Served, headers: dict[str, str]) -> dict[str, Any]:
    status, _, started = call(server, "POST", "/rescorings",
                              {"criteria": "acnp2006", "clinic_id": "clinic-north"},
                              headers=headers)
    assert status == 202 and isinstance(started, dict)
    for _ in range(200):  # the run executes in the server's background thread
        status, _, run = call(server, "GET", f"/rescorings/{started['run_id']}", headers=headers)
        assert status == 200 and isinstance(run, dict)
        if run["status"] == "completed":
            return run
        time.sleep(0.05)
    raise AssertionError(run)


def test_a_researcher_reads_outcomes_a_run_and_the_criteria_accessibly(page: Page,
                                                                       tmp_path: Path) -> None:
    with serving(tmp_path, {"OUTCOMES_OVERDUE_SWEEP_INTERVAL": "0"}, workers=1) as server:
        issuer = DevIssuer(tmp_path / "dev-issuer.key")
        lee = {"Authorization": "Bearer " + issuer.mint(
            sub="dr-lee", roles=["clinician"], clinics=["clinic-north"], ttl=600)}
        park = {"Authorization": "Bearer " + issuer.mint(
            sub="res-park", roles=["researcher"], clinics=["clinic-north"], ttl=600)}
        given_a_clinic(server, lee)
        run = finished_run(server, park)
        base = f"http://127.0.0.1:{server.port}"

        page.goto(f"{base}/ui/sign-in")
        page.get_by_role("button", name="Sign in as res-park").click()
        page.goto(f"{base}/ui/clinics/clinic-north/outcomes")
        expect(page.get_by_role("heading", level=1)).to_have_text("Outcomes of clinic-north")
        expect(page.locator("#rates-by-month tbody th")).to_have_text(["2026-03"])
        expect(page.get_by_role("img", name="Outcome rates of clinic-north by month of "
                                            "discharge")).to_be_visible()
        assert axe_violations(page) == []

        page.goto(f"{base}/ui/rescorings/{run['run_id']}")
        expect(page.locator("#rates-compare")).to_be_visible()
        assert axe_violations(page) == []
        page.locator("#changes tbody a").first.click()
        expect(page.locator("#before")).to_contain_text("Before: as recorded")
        expect(page.locator("#after")).to_contain_text("After: under acnp2006")
        assert axe_violations(page) == []

        page.goto(f"{base}/ui/criteria")
        expect(page.locator("#criteria tbody th", has_text="acnp2006").first).to_be_visible()
        page.locator("#criteria summary").first.click()  # open one set's parameters
        assert axe_violations(page) == []
