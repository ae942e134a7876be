"""``outcomes import csv --close-at-last-visit``: each imported episode is discharged on the
clinical date of its last valid assessment (ADR 0033), once: a second import closes nothing."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from application.outcomes import OutcomesApplication
from bootstrap import Settings
from cli import app
from domain.episode import Episode

runner = CliRunner()
TRIAL = Path(__file__).parents[1] / "data" / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
TRIAL_COMMAND = ["import", "csv", str(TRIAL), "--clinic", "trial", "--criteria", "frank1991",
                 "--patient", "PATIENT", "--day", "RELDAYS", "--anchor", "2004-01-05",
                 "--instrument", "HAM-D17", "--total", "HAMDTL17", "--baseline", "BASVAL"]


def run(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def discharges() -> dict[str, date]:
    """Each closed episode's discharge date, by episode id."""
    store = OutcomesApplication(Settings().eventsourcing_env())
    try:
        return {str(n.originator_id): store.get_episode(n.originator_id).closed_on  # type: ignore[misc]
                for n in store.notifications(Episode.Closed.TOPIC)}
    finally:
        store.close()


def test_each_episode_is_discharged_on_its_last_visit_once(tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    scores.write_text("patient,date,total\n"  # b's rows out of order: the last visit is the latest
                      "a,2026-01-05,20\na,2026-02-02,12\n"
                      "b,2026-01-12,18\nb,2026-03-09,9\nb,2026-02-09,15\n")
    command = ["import", "csv", str(scores), "--clinic", "c1", "--patient", "patient",
               "--date", "date", "--instrument", "PHQ-9", "--total", "total", "--close-at-last-visit"]
    first = run(*command)
    assert (first["assessments_recorded"], first["episodes_opened"], first["episodes_closed"]) == (
        5, 2, 2)
    assert sorted(discharges().values()) == [date(2026, 2, 2), date(2026, 3, 9)]
    again = run(*command)
    assert (again["duplicates"], again["episodes_closed"], again["skipped"]) == (5, 0, {})
    assert len(discharges()) == 2


def test_without_the_flag_nothing_is_closed_and_the_summary_has_no_count(tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    scores.write_text("patient,date,total\na,2026-01-05,20\n")
    data = run("import", "csv", str(scores), "--clinic", "c1", "--patient", "patient",
               "--date", "date", "--instrument", "PHQ-9", "--total", "total")
    assert "episodes_closed" not in data
    assert discharges() == {}


def test_the_trial_file_closes_all_172_episodes() -> None:
    data = run(*TRIAL_COMMAND, "--close-at-last-visit")
    assert (data["assessments_recorded"], data["episodes_closed"]) == (780, 172)
    last_day: dict[str, int] = {}  # each patient's last visit: the largest RELDAYS of the file
    with TRIAL.open(newline="") as rows:
        for row in csv.DictReader(rows):
            last_day[row["PATIENT"]] = max(last_day.get(row["PATIENT"], 0), int(float(row["RELDAYS"])))
    assert sorted(discharges().values()) == sorted(
        date(2004, 1, 5) + timedelta(days=d) for d in last_day.values())
