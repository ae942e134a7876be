"""The README's alert and caseload scenario runs as written (issue 13, "Done when": a patient goes
off track, the caseload shows it, a clinician acknowledges it and records a support review): the
first scenario's opening block, the "Alerts" block and the "The caseload" block are run by bash,
one after the other, against a real ``outcomes serve`` on a loopback port (SQLite, dev mode), with
``localhost:8000`` and ``.venv/bin/outcomes`` pointed at the test's server and every ``curl``
failing on an HTTP error; what they print is checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from served import serving

# The README's scenarios run under `make run`: SQLite, the read models caught up by the server
# itself (on PostgreSQL a runner would, and a read right after a write may not see it yet).
pytestmark = [pytest.mark.server_process, pytest.mark.sqlite_only]
ROOT = Path(__file__).parents[2]
SECTIONS = ("## A first scenario", "## Alerts", "### The caseload")


def first_block(heading: str) -> str:
    """The first ``sh`` block after the README heading that starts with ``heading``."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n{heading}", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found is not None, heading
    return found[1]


def json_documents(text: str) -> list[Any]:
    """Every JSON document printed one after the other (pretty-printed or not)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return found
        value, at = decoder.raw_decode(text, at)
        found.append(value)


def test_the_readme_alert_and_caseload_scenario_runs_as_written(tmp_path):
    script = "\n".join(first_block(h) for h in SECTIONS)
    # no overdue sweep (the first would come after an hour): the alerts are the scenario's own
    with serving(tmp_path, {"OUTCOMES_OVERDUE_SWEEP_INTERVAL": "0"}, workers=1) as server:
        script = (script.replace(".venv/bin/outcomes", f"{sys.executable} -m cli")
                  .replace("localhost:8000", f"127.0.0.1:{server.port}"))
        prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
        env = {**os.environ, "OUTCOMES_SQLITE_PATH": str(tmp_path / "outcomes.sqlite")}
        ran = subprocess.run(["bash", "-c", prelude + script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    (stages, off_track, alerts, acknowledged, review, caseload, not_on_track,
     health) = json_documents(ran.stdout)
    assert len(stages["events"]) == 2
    # as soon as the week-4 score is recorded: the patient in the off-track group
    [item] = off_track["items"]
    assert item["patient_ref"] == "pt-91c2"
    assert (item["alerts"], item["on_track"], item["latest"]) == (
        {"safety": 0, "off_track": 1, "overdue": 0}, "not_on_track",
        {"score": 18, "on": "2026-02-02"})
    [alert] = alerts["items"]
    assert (alert["kind"], alert["status"], alert["rule"]["id"]) == (
        "off_track", "open", "schueller2015-phq9")
    assert acknowledged["episode_id"] == review["episode_id"] == item["episode_id"]
    # after the acknowledgement and the review: still first; the first scenario's episode after,
    # on track (PHQ-9 2 on day 56, in week 9's window, under 13)
    assert [i["patient_ref"] for i in caseload["items"]] == ["pt-91c2", "pt-7f3a"]
    assert caseload["items"][0]["alerts"]["off_track"] == 1
    assert (caseload["items"][1]["on_track"], caseload["items"][1]["alerts"]) == (
        "on_track", {"safety": 0, "off_track": 0, "overdue": 0})
    assert caseload["next"] is None
    assert [i["patient_ref"] for i in not_on_track["items"]] == ["pt-91c2"]
    assert health["safety_overdue"] == 0
