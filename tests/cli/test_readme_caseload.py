"""The README's measurement-based-care scenario runs as written (issue 13, "Done when": a patient
goes off track, the caseload shows it, a clinician acknowledges it and records a support review):
its shell block is run by bash against a real ``outcomes serve`` on a loopback port (SQLite, dev
mode), with ``localhost:8000`` and ``.venv/bin/outcomes`` pointed at the test's server, every
``curl`` failing on an HTTP error, and what it prints checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from served import serving

# The README's scenarios run under `make run`: SQLite, the read models caught up by the server
# itself (on PostgreSQL a runner would, and a read right after a write may not see it yet).
pytestmark = [pytest.mark.server_process, pytest.mark.sqlite_only]
ROOT = Path(__file__).parents[2]
HEADING = "## Measurement-based care: off-track alerts and the caseload"


def scenario() -> str:
    """The first ``sh`` block under the README's measurement-based-care heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found is not None
    return found[1]


def json_documents(text: str) -> list[object]:
    """Every JSON document printed one after the other (pretty-printed or not)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := _skip(text, at)) < len(text):
        value, at = decoder.raw_decode(text, at)
        found.append(value)
    return found


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def test_the_readme_caseload_scenario_runs_and_shows_the_off_track_patient(tmp_path):
    # no overdue sweep (the first would come after an hour): the alerts are the scenario's own
    with serving(tmp_path, {"OUTCOMES_OVERDUE_SWEEP_INTERVAL": "0"}, workers=1) as server:
        script = (scenario().replace(".venv/bin/outcomes", f"{sys.executable} -m cli")
                  .replace("localhost:8000", f"127.0.0.1:{server.port}"))
        prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
        env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(tmp_path / "outcomes.sqlite")}
        ran = subprocess.run(["bash", "-c", prelude + script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    caseload, acknowledged, review, alerts, health = json_documents(ran.stdout)
    [item] = caseload["items"]
    assert item["patient_ref"] == "pt-91c2"
    assert (item["alerts"], item["on_track"]) == (
        {"safety": 0, "off_track": 1, "overdue": 0}, "not_on_track")
    assert item["latest"] == {"score": 18, "on": "2026-02-02"}
    assert caseload["next"] is None
    [alert] = alerts["items"]
    assert (alert["kind"], alert["status"], alert["action"], alert["acknowledged_by"]) == (
        "off_track", "acknowledged", "support_review", "dr-lee")
    assert alert["rule"]["id"] == "schueller2015-phq9"
    assert alert["explanation"].startswith("PHQ-9 18 at week 4")
    assert health["safety_overdue"] == 0
    assert acknowledged and review
