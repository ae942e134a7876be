"""Shadow re-scoring, adoption of other criteria and custom criteria sets, through the application
on the in-memory store (clock stopped at 2027-12-31 UTC).

Shadow runs: every public vector (tests/data/criteria-vectors/) is recorded row by row into an
episode under each of its criteria keys; a run under another set must give, for each episode,
exactly what the pure fold gives on the same rows, and must leave the episodes' store as it was.
Adoption: the events appended are exactly the difference between the old set's fold and the new
one's, each citing the adoption; ``as_of`` before the adoption still shows the old history.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from criteria_vectors import BY_ID, VECTORS

import application.rescoring as rescorings
from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog, ShadowRuns
from domain.criteria.builtin import BUILTIN, get_criteria
from domain.criteria.fold import Observation, fold
from domain.episode import Episode
from domain.errors import (
    DomainError,
    EpisodeClosedError,
    InvalidCriteriaParameterError,
    InvalidInputError,
    UnknownCriteriaError,
    UnstageableInstrumentError,
)
from domain.rescoring import Rescoring
from projections.rescorings import RescoringStore

NOW = datetime(2027, 12, 31, tzinfo=UTC)
LONGITUDINAL = ["frank1991", "frank1991-rec26w", "acnp2006", "acnp2006-symptom"]
COURSE = ["nhs-talking-therapies-2024", "cms159"]
CLINICIAN = "clinician-0042"
LEAD = "lead-7"
# A clinic's variant of frank1991: full remission needs 3 weeks, recovery 120 days after onset.
CUSTOM_ID = "clinic-a-frank-21d"
CUSTOM_PARAMS = {"full_remission_min_span_days": 21, "recovery_min_days_from_full_onset": 120}
CUSTOM_SOURCE = "Clinic A outcomes policy 2026, section 3"


def fixed_clock() -> datetime:
    return NOW


def new_app() -> OutcomesApplication:
    return OutcomesApplication({}, clock=fixed_clock)


# -- helpers ------------------------------------------------------------------------------------

def rows_of(vec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of a vector, the back-dated insert included (recorded last, as it happened)."""
    rows: list[dict[str, Any]] = vec["assessments"] + vec.get("backdated_insert", [])
    return rows


def open_for(app: OutcomesApplication, vec: dict[str, Any], criteria: str,
             clinic_id: str = "clinic-1") -> UUID:
    first = min(date.fromisoformat(r["date"]) for r in rows_of(vec))
    return app.open_episode(patient_ref=f"pseudo-{vec['id']}", clinic_id=clinic_id,
                            recorded_by=CLINICIAN, criteria=criteria,
                            instrument=vec["instrument"], opened_on=first).episode_id


def record_rows(app: OutcomesApplication, episode_id: UUID, vec: dict[str, Any],
                rows: list[dict[str, Any]], first_row: int = 1) -> None:
    for index, row in enumerate(rows, start=first_row):
        app.record_assessment(
            episode_id, instrument=row.get("instrument", vec["instrument"]),
            administered=date.fromisoformat(row["date"]), items=row.get("items"),
            total=row.get("total"), recorded_by=CLINICIAN, assessment_id=f"row-{index:04d}")


def observations(vec: dict[str, Any], rows: list[dict[str, Any]]) -> list[Observation]:
    """The rows as the fold sees them, with the ids ``record_rows`` gives them."""
    return [Observation(f"row-{i:04d}", r.get("instrument", vec["instrument"]),
                        date.fromisoformat(r["date"]),
                        tuple(r["items"]) if r.get("items") is not None else None,
                        r.get("total"))
            for i, r in enumerate(rows, start=1)]


def discharge_of(vec: dict[str, Any]) -> date | None:
    return date.fromisoformat(vec["discharge"]) if vec.get("discharge") else None


def key(e: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a decision (StageDecision.key)."""
    return (e["type"], e["date"], e["degree"], e["onset"], e["assessment_id"])


def fold_keys(vec: dict[str, Any], rows: list[dict[str, Any]], criteria: Any) -> list[tuple[Any, ...]]:
    chosen = get_criteria(criteria) if isinstance(criteria, str) else criteria
    return [d.key for d in fold(observations(vec, rows), chosen, instrument=vec["instrument"]).events]


def store_snapshot(app: OutcomesApplication) -> tuple[int | None, int]:
    """(last position, number of stored events) of the episodes' store."""
    count = len(app.recorder.select_notifications(start=1, limit=10**9))
    return app.recorder.max_notification_id(), count


def shadow(app: OutcomesApplication, log: RescoringLog, store: RescoringStore, criteria: str,
           **kwargs: Any) -> UUID:
    """Request and execute a run to the end; returns its id."""
    options: dict[str, Any] = {"params": None, "clinic_id": None, "as_of": None, **kwargs}
    run = ShadowRuns(app, log, store).request(criteria=criteria, recorded_by=LEAD, **options)
    assert ShadowRuns(app, log, store).execute(run.run_id) == "completed"
    return run.run_id


# -- shadow runs over every public vector -------------------------------------------------------

@dataclass
class Recorded:
    app: OutcomesApplication
    episodes: dict[tuple[str, str], UUID]  # (vector id, criteria key) -> episode


@dataclass
class Shadowed:
    recorded: Recorded
    log: RescoringLog
    store: RescoringStore
    runs: dict[str, UUID]  # criteria id -> run
    before: tuple[int | None, int]
    after: tuple[int | None, int]


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    """Given every vector recorded under each of its criteria keys (discharged where it says)."""
    app = new_app()
    episodes = {}
    for vec in VECTORS:
        for criteria in vec["expected"]:
            episode_id = open_for(app, vec, criteria)
            record_rows(app, episode_id, vec, rows_of(vec))
            discharged_on = discharge_of(vec)
            if discharged_on is not None:
                app.close_episode(episode_id, discharged_on=discharged_on, recorded_by=CLINICIAN)
            episodes[(vec["id"], criteria)] = episode_id
    return Recorded(app, episodes)


@pytest.fixture(scope="module")
def shadowed(recorded: Recorded) -> Shadowed:
    """When one shadow run is made under each set."""
    log, store = RescoringLog({}), RescoringStore(None)
    before = store_snapshot(recorded.app)
    runs = {criteria: shadow(recorded.app, log, store, criteria)
            for criteria in LONGITUDINAL + COURSE}
    return Shadowed(recorded, log, store, runs, before, store_snapshot(recorded.app))


def _expected(vec: dict[str, Any], criteria: str) -> tuple[list[dict[str, Any]], Any, str | None]:
    """(decisions, outcome, error code) of the pure fold on the vector's rows."""
    try:
        result = fold(observations(vec, rows_of(vec)), get_criteria(criteria),
                      instrument=vec["instrument"], discharge=discharge_of(vec))
    except DomainError as exc:
        return [], None, exc.code
    outcome = dict(result.outcome) if result.outcome is not None else None
    return [d.as_dict() for d in result.events], outcome, None


@pytest.mark.parametrize("criteria", LONGITUDINAL + COURSE)
@pytest.mark.parametrize("vec", VECTORS, ids=[v["id"] for v in VECTORS])
def test_shadow_run_equals_the_pure_fold_on_the_same_rows(shadowed: Shadowed, vec: dict[str, Any],
                                                          criteria: str) -> None:
    run_id = shadowed.runs[criteria]
    expected, outcome, error = _expected(vec, criteria)
    for recorded_under in vec["expected"]:
        episode_id = shadowed.recorded.episodes[(vec["id"], recorded_under)]
        result = shadowed.store.episode(run_id, episode_id)
        assert result is not None, (vec["id"], recorded_under)
        where = f"{vec['id']} recorded under {recorded_under}, re-scored under {criteria}"
        # Then the would-be history is the fold's, evidence and explanations included ...
        assert result["error"] == error, where
        assert result["new"] == expected, where
        assert result["outcome_new"] == outcome, where
        # ... next to the history as recorded
        history = shadowed.recorded.app.stage_history(episode_id)
        assert [key(e) for e in result["now"]] == [key(e) for e in history], where
        assert result["criteria_now"] == get_criteria(recorded_under).ref(), where
        assert result["criteria_hash"] == get_criteria(criteria).hash
        if recorded_under == criteria:
            assert not result["changed"], where


def test_shadow_runs_leave_the_episodes_store_unchanged(shadowed: Shadowed) -> None:
    assert shadowed.after == shadowed.before
    assert shadowed.before[0] is not None and shadowed.before[1] > 0


def test_a_run_counts_every_episode_and_the_ones_that_would_change(shadowed: Shadowed) -> None:
    run = shadowed.store.run(shadowed.runs["acnp2006"])
    assert run is not None
    total = len(shadowed.recorded.episodes)
    assert (run["status"], run["episodes"], run["processed"], run["total"]) == \
        ("completed", total, total, total)
    changes, after = shadowed.store.changes(shadowed.runs["acnp2006"], limit=1000)
    assert after is None and len(changes) == run["changed"] > 0
    assert all(c["stage_now"] != c["stage_new"] or c["added"] or c["removed"] or c["moved"]
               for c in changes)
    # The figures are rates of the evaluable episodes, side by side
    figures = run["figures"]
    for side in ("now", "new"):
        assert figures[side]["episodes"] == total
        evaluable = figures[side]["evaluable"]
        for milestone, count in figures[side]["counts"].items():
            assert figures[side]["rates"][milestone] == round(100 * count / evaluable, 1)


def test_a_run_is_recorded_with_who_what_and_its_figures(shadowed: Shadowed) -> None:
    run_id = shadowed.runs["frank1991-rec26w"]
    # The run's own log holds Requested, then Completed
    events = list(shadowed.log.repository.event_store.get(run_id))
    assert [type(e) for e in events] == [Rescoring.Requested, Rescoring.Completed]
    requested, completed = events
    assert isinstance(requested, Rescoring.Requested) and isinstance(completed, Rescoring.Completed)
    criteria = get_criteria("frank1991-rec26w")
    assert requested.criteria == criteria.describe()
    assert (requested.recorded_by, requested.clinic_id, requested.as_of) == (LEAD, None, NOW)
    state = shadowed.store.run(run_id)
    assert state is not None
    assert state["criteria"] == criteria.ref()
    assert (state["requested_by"], state["as_of"]) == (LEAD, NOW.isoformat())
    assert completed.figures == state["figures"]
    assert (completed.episodes, completed.changed) == (state["episodes"], state["changed"])
    run = shadowed.log.repository.get(run_id)
    assert run.completed and run.criteria_set == criteria


# -- as_of, clinics, interruption ---------------------------------------------------------------

def test_a_run_as_of_a_moment_ignores_what_was_recorded_later() -> None:
    # Given V11's rows, then (later) the back-dated 02-05 score
    app, log, store = new_app(), RescoringLog({}), RescoringStore(None)
    vec = BY_ID["V11"]
    rows, insert = vec["assessments"], vec["backdated_insert"]
    episode_id = open_for(app, vec, "frank1991")
    record_rows(app, episode_id, vec, rows)
    between = app.episode_events(episode_id)[-1].timestamp
    time.sleep(0.002)
    record_rows(app, episode_id, vec, insert, first_row=len(rows) + 1)
    # When re-scored under acnp2006 as of the moment between the two recordings, and as of now
    then = store.episode(shadow(app, log, store, "acnp2006", as_of=between), episode_id)
    now = store.episode(shadow(app, log, store, "acnp2006"), episode_id)
    # Then the first run does not see the back-dated score, the second does
    assert then is not None and now is not None
    assert [key(e) for e in then["new"]] == fold_keys(vec, rows, "acnp2006")
    assert [key(e) for e in then["now"]] == fold_keys(vec, rows, "frank1991")
    assert [key(e) for e in now["new"]] == fold_keys(vec, rows + insert, "acnp2006")
    assert then["new"] != now["new"]


def test_a_run_before_an_episode_was_opened_leaves_it_out() -> None:
    app, log, store = new_app(), RescoringLog({}), RescoringStore(None)
    episode_id = open_for(app, BY_ID["V1"], "frank1991")
    run_id = shadow(app, log, store, "acnp2006", as_of=datetime(2020, 1, 1, tzinfo=UTC))
    assert store.episode(run_id, episode_id) is None
    state = store.run(run_id)
    assert state is not None and (state["processed"], state["episodes"]) == (1, 0)


def test_a_run_for_one_clinic_rescores_only_its_episodes() -> None:
    app, log, store = new_app(), RescoringLog({}), RescoringStore(None)
    ours = [open_for(app, BY_ID[v], "frank1991", clinic_id="clinic-a") for v in ("V1", "V5")]
    theirs = open_for(app, BY_ID["V6"], "frank1991", clinic_id="clinic-b")
    for episode_id, vid in zip([*ours, theirs], ("V1", "V5", "V6"), strict=True):
        record_rows(app, episode_id, BY_ID[vid], rows_of(BY_ID[vid]))
    run_id = shadow(app, log, store, "acnp2006", clinic_id="clinic-a")
    assert all(store.episode(run_id, e) is not None for e in ours)
    assert store.episode(run_id, theirs) is None
    state = store.run(run_id)
    assert state is not None and state["episodes"] == 2 and state["clinic_id"] == "clinic-a"
    assert state["figures"]["now"]["episodes"] == 2


@pytest.mark.parametrize("persistence", ["memory", "sqlite"])
def test_an_interrupted_run_resumes_where_it_stopped(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path, persistence: str) -> None:
    # Given seven episodes (in memory, or on SQLite: the one-scan reader), saved two at a time
    monkeypatch.setattr(rescorings, "BATCH", 2)
    env = {} if persistence == "memory" else {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "outcomes.sqlite")}
    app = OutcomesApplication(env, clock=fixed_clock)
    log, store = RescoringLog({}), RescoringStore(None)
    episodes = []
    for vid in ("V1", "V2", "V3", "V4", "V5", "V6", "V7"):
        episode_id = open_for(app, BY_ID[vid], "frank1991")
        record_rows(app, episode_id, BY_ID[vid], rows_of(BY_ID[vid]))
        episodes.append(episode_id)
    before = store_snapshot(app)
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 4:
            stop.set()

    run = ShadowRuns(app, log, store).request(criteria="acnp2006", params=None, clinic_id=None, as_of=None,
                  recorded_by=LEAD)
    # When it is stopped after the second batch
    assert ShadowRuns(app, log, store).execute(run.run_id, progress, stop) == "interrupted"
    state = store.run(run.run_id)
    assert state is not None
    assert (state["status"], state["processed"], state["episodes"], state["total"]) == \
        ("interrupted", 4, 4, 7)
    assert state["figures"] is None
    assert seen[:2] == [(2, 7), (4, 7)]
    assert not log.repository.get(run.run_id).completed
    # Then running it again finishes it ...
    assert ShadowRuns(app, log, store).execute(run.run_id) == "completed"
    # ... with the results of a run that was never interrupted
    whole = shadow(app, log, store, "acnp2006")
    resumed, uninterrupted = store.run(run.run_id), store.run(whole)
    assert resumed is not None and uninterrupted is not None
    for name in ("status", "processed", "total", "episodes", "changed", "figures"):
        assert resumed[name] == uninterrupted[name], name
    for episode_id in episodes:
        one, other = store.episode(run.run_id, episode_id), store.episode(whole, episode_id)
        assert one is not None and other is not None
        assert {k: v for k, v in one.items() if k != "run_id"} == \
            {k: v for k, v in other.items() if k != "run_id"}
    assert [type(e) for e in log.repository.event_store.get(run.run_id)] == \
        [Rescoring.Requested, Rescoring.Completed]
    # ... and running a completed run again records nothing more
    assert ShadowRuns(app, log, store).execute(run.run_id) == "completed"
    assert len(list(log.repository.event_store.get(run.run_id))) == 2
    assert store_snapshot(app) == before


def test_a_run_under_an_unknown_set_is_refused_and_not_recorded() -> None:
    app, log, store = new_app(), RescoringLog({}), RescoringStore(None)
    with pytest.raises(UnknownCriteriaError):
        ShadowRuns(app, log, store).request(criteria="beck1961", params=None, clinic_id=None, as_of=None,
                recorded_by=LEAD)
    with pytest.raises(InvalidCriteriaParameterError):
        ShadowRuns(app, log, store).request(criteria="acnp2006", params={"bogus": "1"}, clinic_id=None,
                as_of=None, recorded_by=LEAD)
    assert log.recorder.max_notification_id() in (None, 0)


def test_a_run_with_params_rescores_under_the_variant() -> None:
    app, log, store = new_app(), RescoringLog({}), RescoringStore(None)
    vec = BY_ID["V1"]
    episode_id = open_for(app, vec, "frank1991")
    record_rows(app, episode_id, vec, rows_of(vec))
    run_id = shadow(app, log, store, "acnp2006", params={"remission_min_span_days": "28"})
    variant = get_criteria("acnp2006", {"remission_min_span_days": "28"})
    state, result = store.run(run_id), store.episode(run_id, episode_id)
    assert state is not None and result is not None
    assert state["criteria"] == variant.ref()
    assert [key(e) for e in result["new"]] == fold_keys(vec, rows_of(vec), variant)


# -- adoption -----------------------------------------------------------------------------------

@pytest.fixture
def app() -> OutcomesApplication:
    return new_app()


def register_custom(app: OutcomesApplication) -> None:
    app.register_criteria(criteria_id=CUSTOM_ID, base="frank1991", params=CUSTOM_PARAMS,
                          source=CUSTOM_SOURCE, recorded_by=LEAD)


def adopted_events(app: OutcomesApplication, episode_id: UUID) -> list[Episode.CriteriaAdopted]:
    return [e for e in app.episode_events(episode_id) if isinstance(e, Episode.CriteriaAdopted)]


@pytest.mark.parametrize("target", ["acnp2006", "frank1991-rec26w", CUSTOM_ID])
@pytest.mark.parametrize("vid", ["V1", "V5", "V7", "V11"])
def test_adoption_appends_exactly_the_difference_between_the_two_folds(
        app: OutcomesApplication, vid: str, target: str) -> None:
    # Given an episode recorded under frank1991
    register_custom(app)
    vec = BY_ID[vid]
    episode_id = open_for(app, vec, "frank1991")
    record_rows(app, episode_id, vec, rows_of(vec))
    before_adoption = app.episode_events(episode_id)[-1].timestamp
    before = {e["stage_id"]: e for e in app.stage_history(episode_id)}
    new_set = app.criteria_set(target)
    old_keys = set(fold_keys(vec, rows_of(vec), "frank1991"))
    new_keys = set(fold_keys(vec, rows_of(vec), new_set))
    time.sleep(0.002)
    # When the clinic adopts the target set for it
    result = app.adopt_criteria(episode_id, criteria=target, reason="clinic policy 2027",
                                recorded_by=LEAD)
    # Then it withdraws exactly the decisions the new set does not make ...
    assert not result.replayed
    retracted = [key(before[r.stage_id]) for r in result.retracted]
    assert len(retracted) == len(set(retracted))
    assert set(retracted) == old_keys - new_keys
    # ... asserts exactly the ones it makes and the old set did not ...
    asserted = [key(e.as_json()) for e in result.stage_events]
    assert len(asserted) == len(set(asserted))
    assert set(asserted) == new_keys - old_keys
    # ... each citing the adoption, recorded after CriteriaAdopted
    (adoption,) = adopted_events(app, episode_id)
    assert adoption.criteria == new_set.describe()
    assert adoption.previous == get_criteria("frank1991").ref()
    assert (adoption.reason, adoption.recorded_by) == ("clinic policy 2027", LEAD)
    decisions = [*result.retracted, *result.stage_events]
    assert {e.caused_by for e in decisions} <= {f"adoption:{adoption.adoption_id}"}
    assert all(e.criteria.as_json() == new_set.ref() for e in decisions)
    assert all(e.recorded_by == LEAD for e in decisions)
    # The history is now the new set's fold; as of before the adoption, still the old one's
    assert [key(e) for e in app.stage_history(episode_id)] == \
        [key(d.as_dict()) for d in fold(observations(vec, rows_of(vec)), new_set).events]
    assert sorted(key(e) for e in app.stage_history(episode_id, as_of=before_adoption)) == \
        sorted(old_keys)
    assert app.get_episode(episode_id).criteria_set.ref() == new_set.ref()
    # The retracted decisions stay in the record, marked
    history = app.stage_history(episode_id, include_retracted=True)
    assert {e["stage_id"] for e in history if e["retracted"]
            and e["retracted"]["caused_by"] == f"adoption:{adoption.adoption_id}"} == \
        {r.stage_id for r in result.retracted}


def test_adopting_the_set_in_force_again_changes_nothing(app: OutcomesApplication) -> None:
    vec = BY_ID["V1"]
    episode_id = open_for(app, vec, "frank1991")
    record_rows(app, episode_id, vec, rows_of(vec))
    first = app.adopt_criteria(episode_id, criteria="acnp2006", reason="policy",
                               recorded_by=LEAD)
    position = app.recorder.max_notification_id()
    again = app.adopt_criteria(episode_id, criteria="acnp2006", reason="policy",
                               recorded_by=LEAD)
    assert again.replayed and again.position is None
    assert (again.stage_events, again.retracted) == ((), ())
    assert again.version == first.version
    assert app.recorder.max_notification_id() == position
    assert len(adopted_events(app, episode_id)) == 1


def test_after_adoption_new_assessments_are_staged_under_the_new_set(
        app: OutcomesApplication) -> None:
    vec = BY_ID["V1"]
    rows = rows_of(vec)
    episode_id = open_for(app, vec, "frank1991")
    record_rows(app, episode_id, vec, rows[:6])
    app.adopt_criteria(episode_id, criteria="acnp2006", reason="policy", recorded_by=LEAD)
    record_rows(app, episode_id, vec, rows[6:], first_row=7)
    assert [key(e) for e in app.stage_history(episode_id)] == \
        fold_keys(vec, rows, "acnp2006")
    assert all(e["criteria"] == get_criteria("acnp2006").ref()
               for e in app.stage_history(episode_id) if e["date"] > "2026-02-09")


def test_adoption_is_refused_without_appending_anything(app: OutcomesApplication) -> None:
    vec = BY_ID["V1"]
    episode_id = open_for(app, vec, "frank1991")
    record_rows(app, episode_id, vec, rows_of(vec))
    hamd = app.open_episode(patient_ref="pseudo-h", clinic_id="clinic-1", recorded_by=CLINICIAN,
                            criteria="frank1991", instrument="HAM-D17",
                            opened_on=date(2026, 1, 5)).episode_id
    closed = open_for(app, vec, "frank1991")
    record_rows(app, closed, vec, rows_of(vec)[:3])
    app.close_episode(closed, discharged_on=date(2026, 1, 19), recorded_by=CLINICIAN)
    before = store_snapshot(app)
    refused: list[tuple[type[DomainError], UUID, dict[str, Any]]] = [
        (InvalidInputError, episode_id, {"criteria": "acnp2006", "reason": "  "}),
        (UnknownCriteriaError, episode_id, {"criteria": "beck1961", "reason": "policy"}),
        (InvalidCriteriaParameterError, episode_id,
         {"criteria": "acnp2006", "reason": "policy", "params": {"remission_min_span_days": 9999}}),
        (EpisodeClosedError, closed, {"criteria": "acnp2006", "reason": "policy"}),
        (UnstageableInstrumentError, hamd, {"criteria": "acnp2006-symptom", "reason": "policy"}),
    ]
    for error, target, kwargs in refused:
        with pytest.raises(error):
            app.adopt_criteria(target, recorded_by=LEAD, **kwargs)
    assert store_snapshot(app) == before


# -- custom criteria sets -----------------------------------------------------------------------

def test_a_custom_set_is_registered_as_version_1_with_the_hash_of_its_rules(
        app: OutcomesApplication) -> None:
    criteria, created = app.register_criteria(
        criteria_id=CUSTOM_ID, base="frank1991", params=CUSTOM_PARAMS, source=CUSTOM_SOURCE,
        recorded_by=LEAD)
    assert created
    assert (criteria.id, criteria.version, criteria.kind) == (CUSTOM_ID, "1.0.0", "frank")
    assert criteria.hash == BUILTIN["frank1991"].with_params(CUSTOM_PARAMS).hash
    assert criteria.source == CUSTOM_SOURCE
    assert app.criteria_set(CUSTOM_ID) == criteria
    assert [c.id for c in app.custom_criteria()] == [CUSTOM_ID]
    (version,) = app.criteria_versions(CUSTOM_ID)
    assert version["definition"] == criteria.describe()
    assert (version["base"], version["params"], version["recorded_by"]) == \
        ("frank1991", CUSTOM_PARAMS, LEAD)
    assert datetime.fromisoformat(version["recorded_at"]).tzinfo is not None


def test_the_same_definition_again_appends_nothing(app: OutcomesApplication) -> None:
    register_custom(app)
    position = app.recorder.max_notification_id()
    # The same parameters, given as strings and in another order, are the same rules
    criteria, created = app.register_criteria(
        criteria_id=CUSTOM_ID, base="frank1991", source=CUSTOM_SOURCE, recorded_by="someone-else",
        params={"recovery_min_days_from_full_onset": "120", "full_remission_min_span_days": "21"})
    assert not created and criteria.version == "1.0.0"
    assert app.recorder.max_notification_id() == position
    assert len(app.criteria_versions(CUSTOM_ID)) == 1


def test_a_changed_definition_is_a_new_major_version(app: OutcomesApplication) -> None:
    register_custom(app)
    first = app.criteria_set(CUSTOM_ID)
    changed = {**CUSTOM_PARAMS, "recovery_min_days_from_full_onset": 182}
    criteria, created = app.register_criteria(criteria_id=CUSTOM_ID, base="frank1991",
                                              params=changed, source=CUSTOM_SOURCE,
                                              recorded_by="lead-9")
    assert created and criteria.version == "2.0.0"
    assert criteria.hash == BUILTIN["frank1991"].with_params(changed).hash != first.hash
    versions = app.criteria_versions(CUSTOM_ID)
    assert [v["definition"]["version"] for v in versions] == ["1.0.0", "2.0.0"]
    assert [v["definition"]["hash"] for v in versions] == [first.hash, criteria.hash]
    assert [v["recorded_by"] for v in versions] == [LEAD, "lead-9"]
    assert versions[0]["recorded_at"] <= versions[1]["recorded_at"]
    # A new source alone is a new version too; the latest version is the one in use
    _, created = app.register_criteria(criteria_id=CUSTOM_ID, base="frank1991", params=changed,
                                       source="Clinic A policy 2027", recorded_by=LEAD)
    assert created and app.criteria_set(CUSTOM_ID).version == "3.0.0"
    assert [c.version for c in app.custom_criteria()] == ["3.0.0"]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"params": {"bogus": 1}}, InvalidCriteriaParameterError),
    ({"params": {"recovery_min_days_from_full_onset": 99999}}, InvalidCriteriaParameterError),
    ({"params": {"thresholds.PHQ-9.remission_below": 12}}, InvalidCriteriaParameterError),
    ({"params": {"minimal_status": "symptom"}}, InvalidCriteriaParameterError),  # acnp only
    ({"base": "beck1961"}, UnknownCriteriaError),
    ({"criteria_id": "acnp2006"}, InvalidInputError),  # a built-in's id
    ({"criteria_id": "Clinic A"}, InvalidInputError),
    ({"criteria_id": "x"}, InvalidInputError),
    ({"source": " "}, InvalidInputError),
], ids=["unknown-param", "out-of-range", "thresholds-half", "param-of-another-kind",
        "unknown-base", "builtin-id", "bad-id", "short-id", "no-source"])
def test_an_invalid_custom_set_is_refused(app: OutcomesApplication, kwargs: dict[str, Any],
                                          error: type[DomainError]) -> None:
    request_ = {"criteria_id": CUSTOM_ID, "base": "frank1991", "params": CUSTOM_PARAMS,
                "source": CUSTOM_SOURCE, "recorded_by": LEAD, **kwargs}
    with pytest.raises(error):
        app.register_criteria(**request_)
    assert app.recorder.max_notification_id() in (None, 0)
    assert app.custom_criteria() == []


def test_an_invalid_revision_leaves_the_registered_versions(app: OutcomesApplication) -> None:
    register_custom(app)
    with pytest.raises(InvalidCriteriaParameterError):
        app.register_criteria(criteria_id=CUSTOM_ID, base="frank1991", params={"bogus": 1},
                              source=CUSTOM_SOURCE, recorded_by=LEAD)
    assert len(app.criteria_versions(CUSTOM_ID)) == 1


def test_unknown_sets_have_no_versions_and_builtins_have_one(app: OutcomesApplication) -> None:
    with pytest.raises(UnknownCriteriaError):
        app.criteria_versions("clinic-z-unknown")
    (version,) = app.criteria_versions("acnp2006")
    assert version["definition"] == BUILTIN["acnp2006"].describe()


def test_an_episode_opened_under_a_custom_set_stages_by_it(app: OutcomesApplication) -> None:
    register_custom(app)
    vec = BY_ID["V5"]
    episode_id = open_for(app, vec, CUSTOM_ID)
    record_rows(app, episode_id, vec, rows_of(vec))
    custom = app.criteria_set(CUSTOM_ID)
    history = app.stage_history(episode_id)
    assert [key(e) for e in history] == fold_keys(vec, rows_of(vec), custom)
    assert [key(e) for e in history] != fold_keys(vec, rows_of(vec), "frank1991")
    assert all(e["criteria"] == custom.ref() for e in history)
    # A later version does not change the episode: it keeps the definition it was opened under
    app.register_criteria(criteria_id=CUSTOM_ID, base="frank1991", params={}, source=CUSTOM_SOURCE,
                          recorded_by=LEAD)
    assert app.get_episode(episode_id).criteria_set == custom


def test_a_shadow_run_under_a_custom_set(app: OutcomesApplication) -> None:
    register_custom(app)
    log, store = RescoringLog({}), RescoringStore(None)
    vec = BY_ID["V1"]
    episode_id = open_for(app, vec, "frank1991")
    record_rows(app, episode_id, vec, rows_of(vec))
    run_id = shadow(app, log, store, CUSTOM_ID)
    result, state = store.episode(run_id, episode_id), store.run(run_id)
    assert result is not None and state is not None
    assert state["criteria"] == app.criteria_set(CUSTOM_ID).ref()
    assert [key(e) for e in result["new"]] == \
        fold_keys(vec, rows_of(vec), app.criteria_set(CUSTOM_ID))


def test_custom_sets_another_application_registers_on_the_same_store_are_listed(
        tmp_path: Path) -> None:
    # The list is kept by reading only the events stored since the last call (a tail read, not a
    # scan of the whole store on every GET /criteria), and still sees another process's writes.
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "outcomes.sqlite")}
    reader, writer = (OutcomesApplication(env, clock=fixed_clock) for _ in range(2))
    assert reader.custom_criteria() == []
    writer.register_criteria(criteria_id=CUSTOM_ID, base="frank1991", params=CUSTOM_PARAMS,
                             source=CUSTOM_SOURCE, recorded_by=LEAD)
    assert [c.id for c in reader.custom_criteria()] == [CUSTOM_ID]
    writer.register_criteria(criteria_id=CUSTOM_ID, base="frank1991",
                             params={**CUSTOM_PARAMS, "full_remission_min_span_days": 28},
                             source=CUSTOM_SOURCE, recorded_by=LEAD)
    assert [(c.id, c.version) for c in reader.custom_criteria()] == [(CUSTOM_ID, "2.0.0")]
    scanned: list[int] = []
    select = reader.recorder.select_notifications

    def counting(*args: Any, **kwargs: Any) -> Any:
        found = select(*args, **kwargs)
        scanned.append(kwargs["start"])
        return found
    reader.recorder.select_notifications = counting  # type: ignore[method-assign]
    top = reader.recorder.max_notification_id()
    assert [c.id for c in reader.custom_criteria()] == [CUSTOM_ID]
    assert scanned == [] or min(scanned) > (top or 0)  # nothing read twice
