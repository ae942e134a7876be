"""The issue's "Done when", as the README says it: a real ``outcomes serve`` (what ``make run``
starts: SQLite, development mode, loopback), the first scenario's commands run by bash as
written (its first ``sh`` block), then in Chromium one click on the sign-in page as dr-lee, the
caseload, and the scenario's episode as a chart with its two decisions, axe-core clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser_helpers import axe_violations
from playwright.sync_api import Page, expect
from served import serving

pytestmark = [pytest.mark.ui, pytest.mark.server_process, pytest.mark.sqlite_only]
ROOT = Path(__file__).parents[2]


def first_scenario() -> str:
    """The README's first ``sh`` block under "## A first scenario"."""
    section = (ROOT / "README.md").read_text().split("\n## A first scenario", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_after_the_first_scenario_dr_lee_sees_its_episode_as_a_chart_with_its_decisions(
        page: Page, tmp_path: Path) -> None:
    with serving(tmp_path, {"OUTCOMES_OVERDUE_SWEEP_INTERVAL": "0"}, workers=1) as server:
        script = (first_scenario().replace(".venv/bin/outcomes", f"{sys.executable} -m cli")
                  .replace("localhost:8000", f"127.0.0.1:{server.port}"))
        prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
        env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(tmp_path / "outcomes.sqlite")}
        ran = subprocess.run(["bash", "-c", prelude + script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, (ran.stdout, ran.stderr)
        base = f"http://127.0.0.1:{server.port}"

        page.goto(f"{base}/ui/sign-in")
        page.get_by_role("button", name="Sign in as dr-lee").click()
        expect(page).to_have_url(f"{base}/ui/clinics/clinic-north/caseload")
        page.get_by_role("link", name="pt-7f3a").click()
        expect(page.locator("#summary")).to_contain_text("PHQ-9 fell from 18 to 2")
        expect(page.locator("figure#chart-phq-9 svg[role=img]")).to_have_count(1)
        decisions = page.locator("#decisions ol > li")
        expect(decisions).to_have_count(2)
        expect(decisions.nth(0)).to_contain_text(
            "PHQ-9 fell from 18 to 8 (56% ≥ 50%) on 2026-01-26: response under acnp2006 v1.0.0")
        expect(decisions.nth(1)).to_contain_text(
            "PHQ-9 stayed below 5 (minimal symptoms) from 2026-02-09 to 2026-03-02 (21 days ≥ 21)"
            ": full remission under acnp2006 v1.0.0")
        assert axe_violations(page) == []
