"""``outcomes signals list | fit | watch | backtest`` on a store of the test's own (both stores):
their outputs and exit codes (0 done, 1 nothing to back-test, 2 bad input)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli import app

runner = CliRunner()
TRIAL = Path(__file__).parents[1] / "data" / "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
TRIAL_IMPORT = ["import", "csv", str(TRIAL), "--clinic", "trial", "--criteria", "frank1991",
                "--patient", "PATIENT", "--day", "RELDAYS", "--anchor", "2004-01-05",
                "--instrument", "HAM-D17", "--total", "HAMDTL17", "--baseline", "BASVAL",
                "--close-at-last-visit"]


@pytest.fixture(autouse=True)
def _pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_PSEUDONYM_KEY", "cli-test-key-0123456789")


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def output(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_names_the_built_in_packs() -> None:
    packs = output(run("signals", "list", "--json"))
    assert [p["id"] for p in packs] == ["schueller2015-phq9", "stard-qids", "expected-recovery",
                                        "phq9-item9", "overdue"]
    assert all(len(p["hash"]) == 64 and p["version"] == "1.0.0" for p in packs)
    table = run("signals", "list")
    assert table.exit_code == 0 and "schueller2015-phq9" in table.stdout


def test_the_trial_file_back_tested_and_fitted() -> None:
    assert run(*TRIAL_IMPORT).exit_code == 0
    result = output(run("signals", "backtest", "--rule", "expected-recovery", "--clinic",
                        "trial", "--json"))
    assert (result["episodes"], result["excluded"], result["outcome"]) == (172, {}, "response")
    assert "out of sample" in result["method"]
    # the trial's visits are at weeks 1, 2, 4 and 6 (a few at 3 and 8): the weeks the data have.
    # Week 6 is nearly every patient's last visit: nothing comes after it (no later score), so
    # it is not evaluated (the prediction would rest on the outcome's own score).
    figures = {r["decision_point"]: (r["evaluated"], r["not_on_track"], r["insufficient"],
                                     r["no_later_score"], r["tp"], r["fp"], r["tn"], r["fn"])
               for r in result["decision_points"]}
    assert figures == {"week 3": (3, 0, 0, 3, 0, 0, 0, 3),
                       "week 4": (97, 18, 18, 16, 18, 0, 39, 40),
                       "week 6": (1, 0, 0, 108, 0, 0, 1, 0), "week 8": (0, 0, 0, 1, 0, 0, 0, 0)}
    table = run("signals", "backtest", "--rule", "expected-recovery", "--clinic", "trial")
    assert table.exit_code == 0 and "5-fold cross-validation" in table.stdout
    curve = output(run("signals", "fit", "--clinic", "trial", "--instrument", "HAM-D17"))
    assert (curve["episodes"], curve["recorded"], curve["min_episodes"]) == (172, True, 30)
    assert sum(curve["band_counts"].values()) == 172
    assert {b["band"] for b in curve["bands"]} == {
        band for band, n in curve["band_counts"].items() if n >= 30}


def test_a_rule_that_applies_to_no_closed_episode_exits_1() -> None:
    assert run(*TRIAL_IMPORT).exit_code == 0
    result = run("signals", "backtest", "--rule", "schueller2015-phq9", "--clinic", "trial")
    assert result.exit_code == 1
    assert "schueller2015-phq9 applies to none of clinic trial's 172 closed episodes" in \
        result.stderr


def test_bad_input_exits_2() -> None:
    unknown = run("signals", "backtest", "--rule", "nope", "--clinic", "trial")
    assert unknown.exit_code == 2 and "unknown rule pack 'nope'" in unknown.stderr
    outcome = run("signals", "backtest", "--rule", "expected-recovery", "--clinic", "trial",
                  "--outcome", "recovery")
    assert outcome.exit_code == 2
    minimum = run("signals", "fit", "--clinic", "trial", "--instrument", "HAM-D17",
                  "--min-episodes", "1")
    assert minimum.exit_code == 2 and "min_episodes" in minimum.stderr
    bands = run("signals", "fit", "--clinic", "trial", "--instrument", "GAD-7")
    assert bands.exit_code == 2 and "no baseline severity bands for GAD-7" in bands.stderr


def test_watch_records_the_choice_and_watches_the_open_episodes(tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    scores.write_text("patient,date,total\na,2026-01-05,20\n")
    assert run("import", "csv", str(scores), "--clinic", "c1", "--patient", "patient",
               "--date", "date", "--instrument", "PHQ-9", "--total", "total").exit_code == 0
    done = output(run("signals", "watch", "--clinic", "c1", "--rule", "schueller2015-phq9",
                      "--rule", "overdue|overdue_days=21", "--reason", "clinic protocol"))
    assert (done["clinic_id"], done["recorded"], len(done["watched"]), done["skipped"]) == (
        "c1", True, 1, [])
    repeated = run("signals", "watch", "--clinic", "c1", "--rule", "schueller2015-phq9",
                   "--rule", "overdue|overdue_days=21", "--reason", "clinic protocol")
    again = output(repeated)
    assert (again["recorded"], again["watched"], len(again["unchanged"])) == (False, [], 1)
    assert "replace what watched clinic c1's episodes" in repeated.stderr
    assert "no expected-recovery fit" not in repeated.stderr
    # expected recovery chosen before any fit: said, not silently "insufficient" (a new user's
    # trial chose it with no curve and saw the off-track patient turn not_yet)
    unfitted = run("signals", "watch", "--clinic", "c1", "--rule", "expected-recovery",
                   "--reason", "curves")
    assert unfitted.exit_code == 0 and json.loads(unfitted.stdout)["clinic_id"] == "c1"
    assert ("clinic c1 has no expected-recovery fit yet: its signal says 'insufficient' until "
            "`outcomes signals fit --clinic c1 --instrument I` records one") in unfitted.stderr
    bad = run("signals", "watch", "--clinic", "c1", "--rule", "nope", "--reason", "r")
    assert bad.exit_code == 2 and "unknown rule pack" in bad.stderr


def test_episodes_an_import_opens_are_watched_by_the_clinic_choice(tmp_path: Path) -> None:
    from application.outcomes import OutcomesApplication
    from bootstrap import Settings
    from domain.episode import Episode

    output(run("signals", "watch", "--clinic", "c1", "--rule", "overdue|overdue_days=21",
               "--reason", "weekly sessions"))
    scores = tmp_path / "scores.csv"
    scores.write_text("patient,date,total\nb,2026-01-05,20\n")
    command = ["import", "csv", str(scores), "--clinic", "c1", "--patient", "patient",
               "--date", "date", "--instrument", "PHQ-9", "--total", "total", "--json"]
    dry = output(run(*command, "--dry-run"))  # the scratch store holds a copy of the choice
    assert (dry["assessments_recorded"], dry["episodes_opened"]) == (1, 1)
    assert output(run(*command))["episodes_opened"] == 1
    store = OutcomesApplication(Settings().eventsourcing_env())
    try:
        opened = [n.originator_id for n in store.notifications(Episode.Opened.TOPIC)]
        events = store.episode_events(opened[0])
    finally:
        store.close()
    assert [type(e).__name__ for e in events[:2]] == ["Opened", "SignalsWatched"]
    watched = events[1]
    assert isinstance(watched, Episode.SignalsWatched)
    assert [p["id"] for p in watched.packs] == ["overdue|overdue_days=21"]
