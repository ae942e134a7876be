"""``outcomes rescore`` (shadow runs) and ``outcomes adopt`` on a SQLite store in a temporary folder.

``rescore`` prints the run (status, criteria, counts, figures) as JSON on stdout; ``adopt`` prints
what it appended. Usage errors exit with 2 and change nothing.
"""

from __future__ import annotations

import getpass
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner, Result

from bootstrap import Services, Settings, build
from cli import app
from domain.criteria.builtin import get_criteria
from domain.rescoring import Rescoring

runner = CliRunner()
NOW = datetime(2027, 12, 31, tzinfo=UTC)
V1 = [("2026-01-05", 18), ("2026-01-12", 16), ("2026-01-19", 13), ("2026-01-26", 8),
      ("2026-02-02", 6), ("2026-02-09", 4), ("2026-02-16", 3), ("2026-02-23", 4),
      ("2026-03-02", 2), ("2026-03-16", 3), ("2026-03-30", 2), ("2026-04-13", 2),
      ("2026-04-27", 3), ("2026-05-11", 2), ("2026-05-25", 3), ("2026-06-08", 2),
      ("2026-06-22", 1)]


@pytest.fixture(autouse=True)
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "outcomes.sqlite"
    monkeypatch.setenv("OUTCOMES_SQLITE_PATH", str(path))
    return path


@contextmanager
def services(settings: Settings | None = None) -> Iterator[Services]:
    """The store the CLI uses, or the one ``settings`` name (clock stopped at 2027-12-31, so the
    2026 dates are past)."""
    built = build(settings or Settings(), clock=lambda: NOW)
    try:
        yield built
    finally:
        built.close()


def record_episodes(settings: Settings | None = None) -> dict[str, str]:
    """V1 under frank1991 in clinic-a, twice, one closed, and in clinic-b, recorded into the
    store ``settings`` name (default: the CLI's); the episode ids by name."""
    found = {}
    with services(settings) as s:
        for name, clinic in (("a", "clinic-a"), ("closed", "clinic-a"), ("b", "clinic-b")):
            episode_id = s.app.open_episode(patient_ref=f"pseudo-{name}", clinic_id=clinic,
                                            recorded_by="u", criteria="frank1991",
                                            opened_on=date(2026, 1, 5)).episode_id
            for day, total in V1:
                s.app.record_assessment(episode_id, instrument="PHQ-9",
                                        administered=date.fromisoformat(day), total=total,
                                        recorded_by="u")
            found[name] = str(episode_id)
        s.app.close_episode(UUID(found["closed"]), discharged_on=date(2026, 6, 22),
                            recorded_by="u")
    return found


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A SQLite store folder recorded once for the module, and the episode ids by name."""
    folder = tmp_path_factory.mktemp("recorded")
    return folder, record_episodes(Settings(sqlite_path=folder / "outcomes.sqlite"))


@pytest.fixture
def episodes(store: str, request: pytest.FixtureRequest, sqlite_file: Path) -> dict[str, str]:
    """The episodes in this test's store: on SQLite the recorded store's files copied into its
    folder (copying costs no fsync; recording anew would cost ~120), on PostgreSQL recorded
    into the test's own ledger; the episode ids by name."""
    if store == "postgres":
        return record_episodes()
    folder, found = request.getfixturevalue("recorded")
    shutil.copytree(folder, sqlite_file.parent, dirs_exist_ok=True)
    return dict(found)


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def output(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def position() -> int | None:
    with services() as s:
        return s.app.recorder.max_notification_id()


def test_rescore_prints_the_completed_run_and_changes_no_episode(
        episodes: dict[str, str]) -> None:
    before = position()
    report = output(run("rescore", "--criteria", "acnp2006"))
    assert report["status"] == "completed"
    assert report["criteria"] == get_criteria("acnp2006").ref()
    assert (report["episodes"], report["processed"], report["total"]) == (3, 3, 3)
    assert report["changed"] == 3 and report["requested_by"] == f"cli:{getpass.getuser()}"
    # Both sets see V1 recover (acnp2006 later: the decisions move); only frank1991 has a
    # partial remission
    for side, partial in (("now", 100.0), ("new", 0.0)):
        assert report["figures"][side]["rates"] == {
            "response": 100.0, "partial_remission": partial, "remission": 100.0,
            "recovery": 100.0, "relapse": 0.0, "recurrence": 0.0}
    assert position() == before
    with services() as s:  # the run is recorded in the runs' own log
        events = list(s.runs.repository.event_store.get(UUID(report["run_id"])))
        assert [type(e) for e in events] == [Rescoring.Requested, Rescoring.Completed]
        assert events[0].recorded_by == f"cli:{getpass.getuser()}"


def test_rescore_for_a_clinic_with_a_parameter(episodes: dict[str, str]) -> None:
    report = output(run("rescore", "--criteria", "acnp2006", "--param",
                        "remission_min_span_days=28", "--clinic", "clinic-b",
                        "--as-of", "2027-12-31T00:00:00+00:00"))
    assert report["criteria"]["id"] == "acnp2006|remission_min_span_days=28"
    assert (report["clinic_id"], report["episodes"]) == ("clinic-b", 1)
    assert report["as_of"] == "2027-12-31T00:00:00+00:00"


def test_resuming_a_finished_run_changes_nothing(episodes: dict[str, str]) -> None:
    first = output(run("rescore", "--criteria", "frank1991-rec26w"))
    again = output(run("rescore", "--resume", first["run_id"]))
    for name in ("run_id", "status", "processed", "episodes", "changed", "figures"):
        assert again[name] == first[name], name
    with services() as s:
        assert len(list(s.runs.repository.event_store.get(UUID(first["run_id"])))) == 2


@pytest.mark.parametrize("args", [
    ["rescore"],
    ["rescore", "--criteria", "beck1961"],
    ["rescore", "--criteria", "acnp2006", "--param", "bogus=1"],
    ["rescore", "--criteria", "acnp2006", "--as-of", "2027-12-31T00:00:00"],
    ["rescore", "--resume", "not-a-uuid"],
    ["rescore", "--resume", "00000000-0000-4000-8000-000000000000"],
], ids=["nothing", "unknown-criteria", "unknown-param", "naive-as-of", "bad-run-id",
        "unknown-run"])
def test_rescore_usage_errors_exit_2(episodes: dict[str, str], args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_adopt_for_a_clinic_prints_the_adopted_episodes(episodes: dict[str, str]) -> None:
    adopted = output(run("adopt", "--criteria", "acnp2006", "--reason", "clinic policy 2027",
                         "--clinic", "clinic-a"))
    assert adopted == {"clinic_id": "clinic-a", "adopted": [episodes["a"]], "unchanged": [],
                       "skipped": []}
    with services() as s:
        assert s.app.get_episode(UUID(episodes["a"])).criteria["id"] == "acnp2006"
        assert s.app.get_episode(UUID(episodes["closed"])).criteria["id"] == "frank1991"
        assert s.app.get_episode(UUID(episodes["b"])).criteria["id"] == "frank1991"
    again = output(run("adopt", "--criteria", "acnp2006", "--reason", "again",
                       "--clinic", "clinic-a"))
    assert (again["adopted"], again["unchanged"]) == ([], [episodes["a"]])


def test_adopt_for_one_episode(episodes: dict[str, str]) -> None:
    adopted = output(run("adopt", "--criteria", "acnp2006", "--reason", "policy",
                         "--episode", episodes["b"]))
    assert adopted["episode_id"] == episodes["b"] and adopted["adopted"] is True
    assert adopted["retracted"] > 0 and adopted["asserted"] > 0


@pytest.mark.parametrize("args", [
    [],
    ["--clinic", "clinic-a", "--episode", "00000000-0000-4000-8000-000000000000"],
    ["--episode", "not-a-uuid"],
    ["--clinic", "clinic-a", "--criteria", "beck1961"],
], ids=["neither", "both", "bad-episode-id", "unknown-criteria"])
def test_adopt_usage_errors_exit_2_and_change_nothing(episodes: dict[str, str],
                                                      args: list[str]) -> None:
    before = position()
    defaults = [] if "--criteria" in args else ["--criteria", "acnp2006"]
    result = run("adopt", "--reason", "policy", *defaults, *args)
    assert result.exit_code == 2, result.output
    assert position() == before


def test_rescore_in_two_workers_reports_what_one_process_reports(
        episodes: dict[str, str]) -> None:
    one = output(run("rescore", "--criteria", "acnp2006", "--workers", "1"))
    two = output(run("rescore", "--criteria", "acnp2006", "--workers", "2"))
    for name in ("status", "processed", "total", "episodes", "changed", "figures"):
        assert two[name] == one[name], name
    with services() as s:
        assert [len(s.rescorings.ranges(UUID(r["run_id"]))) for r in (one, two)] == [1, 2]
    result = run("rescore", "--criteria", "acnp2006", "--workers", "0")
    assert result.exit_code == 2, result.output
