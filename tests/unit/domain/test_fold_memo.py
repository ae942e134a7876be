"""The remembered scoring (``instruments.score_memoised``) and the day-score shortcut give exactly
what the fold gave without them (issue 12, ADR 0025's section on the fold of a long episode).

The reference is the fold as it was: ``full_fold()`` patches in ``score`` called afresh for every
observation and ``day_scores`` as it was (``days_record`` for every day), so the test compares the
new path with the old algorithm in the same process. Compared: every fold result on every public
vector under every set it names and every built-in set; the stored events (every field) and the
snapshot bytes of episodes built by hypothesis-generated commands (record in and out of clinical
order, items or totals, same-day records, void, adopt criteria, close) under every built-in set;
and a snapshot restores (``Episode.Snapshot.mutate``, without the keyword calls) the same episode.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock
from uuid import UUID

import pytest
from criteria_vectors import VECTORS
from hypothesis import given, settings
from hypothesis import strategies as st

from application.outcomes import OutcomesApplication
from domain import instruments
from domain.criteria import fold as fold_module
from domain.criteria import timeline
from domain.criteria.builtin import BUILTIN, get_criteria
from domain.criteria.fold import FoldResult, fold
from domain.criteria.sets import CriteriaSet
from domain.criteria.timeline import Observation, Point, days_record
from domain.episode import AssessmentState, Episode, StageState, _restored
from domain.errors import DomainError
from domain.trajectory import parse_trajectory

# --- the reference: the fold before the memo ----------------------------------------------


def _fresh_score(code: str, items: Any, total: Any, *, missing_policy: Any,
                 rounding: Any) -> instruments.Score:
    return instruments.score(instruments.get_instrument(code), items, total,
                             missing_policy=missing_policy, rounding=rounding)


def _old_day_scores(observations: Iterable[Observation], criteria: CriteriaSet) -> list[Point]:
    days: dict[tuple[str, date], list[Observation]] = {}
    for obs in observations:
        days.setdefault((obs.instrument, obs.on), []).append(obs)
    kept = sorted((days_record(records) for records in days.values()),
                  key=lambda o: (o.on, o.instrument, o.assessment_id))
    return [Point(o, timeline.score_observation(o, criteria)) for o in kept]


@contextmanager
def full_fold() -> Iterator[None]:
    """Inside: every observation scored afresh, every day through ``days_record``."""
    with mock.patch.object(timeline, "score_memoised", _fresh_score), \
            mock.patch.object(fold_module, "day_scores", _old_day_scores):
        yield


def _as_data(result: FoldResult) -> Any:
    return ([e.as_dict() for e in result.events], result.outcome,
            {k: (s.value, s.exact, s.answered, s.reported_total, s.flags)
             for k, s in sorted(result.scores.items())})


def _vector_cases() -> list[Any]:
    cases = []
    for vec in VECTORS:
        rows = vec["assessments"] + vec.get("backdated_insert", [])
        for key in sorted(set(vec.get("expected", {})) | set(vec.get("expected_before", {}))
                          | set(BUILTIN)):
            cases.append(pytest.param(vec, key, rows, id=f"{vec['id']}:{key}"))
            cases.append(pytest.param(vec, key, vec["assessments"],
                                      id=f"{vec['id']}:{key}:before"))
    return cases


@pytest.mark.parametrize(("vec", "key", "rows"), _vector_cases())
def test_every_vector_folds_as_without_the_memo(vec, key, rows):
    trajectory = parse_trajectory({"instrument": vec.get("instrument", "PHQ-9"),
                                   "assessments": rows, "discharge": vec.get("discharge")})
    criteria = get_criteria(key)

    def run() -> Any:
        try:
            return _as_data(fold(trajectory.observations, criteria,
                                 instrument=trajectory.instrument,
                                 discharge=trajectory.discharge))
        except DomainError as exc:  # a set that cannot stage the vector's instrument
            return type(exc).__name__, str(exc)

    twice = run(), run()  # the second run is served from the memo
    with full_fold():
        reference = run()
    assert twice[0] == reference and twice[1] == reference


# --- the memo itself ------------------------------------------------------------------------

ANSWERS = st.one_of(st.none(), st.integers(-1, 4), st.booleans(), st.sampled_from([1.0, 2.5]))


@settings(max_examples=300, deadline=None)
@given(code=st.sampled_from(sorted(instruments.INSTRUMENTS)),
       items=st.one_of(st.none(), st.lists(ANSWERS, min_size=6, max_size=11).map(tuple)),
       total=st.one_of(st.none(), st.integers(-1, 60), st.booleans(), st.just(3.0)),
       policy=st.sampled_from(instruments.MISSING_POLICIES),
       rounding=st.sampled_from(instruments.ROUNDINGS))
def test_the_memo_scores_exactly_as_score_errors_included(code, items, total, policy, rounding):
    def outcome(scorer: Any) -> Any:
        try:
            s = scorer(code, items, total, missing_policy=policy, rounding=rounding)
        except DomainError as exc:
            return type(exc).__name__, str(exc), exc.field
        return s, type(s.value), type(s.exact)

    reference = outcome(_fresh_score)
    assert outcome(instruments.score_memoised) == reference
    assert outcome(instruments.score_memoised) == reference  # now from the memo


def test_a_bool_or_float_answer_is_never_served_the_int_answers_score():
    ints = (1, 1, 1, 1, 1, 1, 1, 1, 0)
    good = instruments.score_memoised("PHQ-9", ints, 8, missing_policy="prorate_le2",
                                      rounding="none")
    assert good.value == 8 and good.flags == ()
    for odd_items, odd_total in (((True, *ints[1:]), 8), (ints, True), ((1.0, *ints[1:]), 8)):
        with pytest.raises(DomainError):
            instruments.score_memoised("PHQ-9", odd_items, odd_total,
                                       missing_policy="prorate_le2", rounding="none")


# --- episodes built by commands: the same stored events and snapshots ----------------------

NOW = datetime(2027, 1, 1, tzinfo=UTC)
START = date(2025, 1, 6)
EPISODE_ID = UUID("00000000-0000-4000-8000-000000000012")
LIBRARY_STATE = {"_id", "_version", "_created_on", "_modified_on", "_pending_events"}
EPISODE_STATE = {"patient_ref", "clinic_id", "criteria", "instrument", "opened_on",
                 "assessments", "stages", "closed_on", "outcome", "alerts", "signals",
                 "watching"}


@contextmanager
def ticking_clock() -> Iterator[None]:
    """Event timestamps 1 ms apart from a fixed start: two builds give the same timestamps."""
    ticks = itertools.count()
    start = datetime(2026, 12, 1, tzinfo=UTC)
    with mock.patch("eventsourcing.domain.datetime_now_with_tzinfo",
                    lambda: start + timedelta(milliseconds=next(ticks))):
        yield


RECORD = st.tuples(st.just("record"), st.integers(0, 400),  # day, out of order too
                   st.one_of(st.integers(0, 27).map(lambda t: (t, None)),
                             st.tuples(st.none() | st.integers(0, 27),
                                       st.lists(st.sampled_from([0, 0, 1, 2, 3, None]),
                                                min_size=9, max_size=9).map(tuple))),
                   st.sampled_from(["PHQ-9"] * 4 + ["GAD-7"]))
COMMAND = st.one_of(RECORD, RECORD, RECORD, RECORD, RECORD, RECORD,
                    st.tuples(st.just("void"), st.integers(0, 60)),
                    st.tuples(st.just("adopt"), st.sampled_from(sorted(BUILTIN))),
                    st.tuples(st.just("close"), st.integers(0, 400)))


def build(set_id: str, commands: list[Any]) -> tuple[list[Any], Episode]:
    """The events the commands give, and the episode at the end."""
    with ticking_clock():
        episode = Episode.open(episode_id=EPISODE_ID, patient_ref="p", clinic_id="c",
                               criteria=BUILTIN[set_id], instrument="PHQ-9", opened_on=START,
                               recorded_by="t", now=NOW)
        recorded: list[str] = []
        for number, command in enumerate(commands):
            try:
                if command[0] == "record":
                    _, day, (total, items), code = command
                    if code == "GAD-7" and items is not None:
                        items = items[:7]
                    episode.record_assessment(
                        assessment_id=f"a{number}", instrument=code,
                        administered=START + timedelta(days=day), items=items, total=total,
                        recorded_by="t", now=NOW)
                    recorded.append(f"a{number}")
                elif command[0] == "void" and recorded:
                    episode.void_assessment(assessment_id=recorded[command[1] % len(recorded)],
                                            reason="entered in error", recorded_by="t")
                elif command[0] == "adopt":
                    episode.adopt_criteria(criteria=BUILTIN[command[1]], reason="policy",
                                           recorded_by="t", now=NOW)
                elif command[0] == "close":
                    episode.close(discharged_on=START + timedelta(days=command[1]),
                                  recorded_by="t", now=NOW)
            except DomainError:
                pass  # a rejected command appends nothing, in both builds alike
    return list(episode.collect_events()), episode


@pytest.fixture(scope="module")
def mapper() -> Any:
    app = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app.mapper
    app.close()


@pytest.mark.parametrize("set_id", sorted(BUILTIN))
@settings(max_examples=60, deadline=None)
@given(commands=st.lists(COMMAND, min_size=1, max_size=40))
def test_episodes_store_the_same_events_and_snapshots_as_with_the_full_fold(
        mapper, set_id, commands):
    events, episode = build(set_id, commands)
    with full_fold():
        reference_events, reference = build(set_id, commands)
    assert [vars(e) for e in events] == [vars(e) for e in reference_events]
    assert ([(s.topic, s.state) for s in map(mapper.to_stored_event, events)]
            == [(s.topic, s.state) for s in map(mapper.to_stored_event, reference_events)])
    # nothing transient in the state a snapshot copies, and the snapshot's stored bytes equal
    assert set(vars(episode)) == LIBRARY_STATE | EPISODE_STATE
    with ticking_clock():
        snapshot = mapper.to_stored_event(Episode.Snapshot.take(episode))
    with ticking_clock():
        reference_snapshot = mapper.to_stored_event(Episode.Snapshot.take(reference))
    assert snapshot.state == reference_snapshot.state
    assert snapshot.topic == reference_snapshot.topic == "outcome-ledger:Episode.Snapshot"
    # the snapshot restores the same episode (the dataclasses rebuilt without the keyword call)
    restored = mapper.to_domain_event(snapshot).mutate(None)
    assert vars(restored) == vars(episode)
    for state in [*restored.assessments.values(), *restored.stages.values()]:
        assert list(vars(state)) == [f.name for f in fields(state)]
        assert type(state) in (AssessmentState, StageState)


def test_a_snapshot_state_without_the_fields_is_refused_as_by_the_constructor():
    values = {f.name: None for f in fields(StageState)}
    assert vars(_restored(StageState, dict(values))) == vars(StageState(**values))
    for wrong in ({k: v for k, v in values.items() if k != "onset"}, {**values, "extra": 1}):
        with pytest.raises(TypeError):
            _restored(StageState, wrong)
