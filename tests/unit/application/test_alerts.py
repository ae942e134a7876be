"""Alerts on the episode (ADR 0031) through OutcomesApplication, on the in-memory store and on
PostgreSQL (the ``app`` fixture): the safety alert of a positive PHQ-9 item 9, the overdue alert
at its boundary and its resolution by the next scorable assessment, the off-track alert and
BackOnTrack of schueller2015-phq9 on a hand-derived trajectory, the lifecycle and its errors,
batched recording, and replay and snapshots with alerts."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest

from application.batch import EpisodePlan, RecordStep, VoidStep
from application.outcomes import SNAPSHOT_INTERVAL, OutcomesApplication, project_events
from domain.episode import Episode
from domain.errors import (
    AlertNotFoundError,
    AlertStateError,
    EpisodeClosedError,
    InvalidInputError,
)
from domain.signals.packs import get_rule_pack

OPENED = date(2026, 1, 5)
BY = "dr-lee"
POSITIVE = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # total 17, item 9 answered 1
NEGATIVE = [2, 2, 2, 2, 2, 2, 2, 2, 0]  # total 16, item 9 answered 0
RATINGS = {"alliance": {"rating": 4, "note": "good rapport"}, "motivation": {"rating": 2},
           "social_support": {"rating": 3, "note": ""}, "life_events": {"rating": 1,
                                                                        "note": "job loss"}}


def on(day: int) -> date:
    return OPENED + timedelta(days=day)


def open_episode(app: OutcomesApplication, instrument: str = "PHQ-9") -> UUID:
    return app.open_episode(patient_ref="pt-1", clinic_id="clinic-a", recorded_by=BY,
                            instrument=instrument, opened_on=OPENED).episode_id


def record(app: OutcomesApplication, episode_id: UUID, day: int, total: int | None = None,
           **kwargs: Any) -> Any:
    kwargs.setdefault("assessment_id", f"a-{day}")
    return app.record_assessment(episode_id, instrument=kwargs.pop("instrument", "PHQ-9"),
                                 administered=on(day), total=total, recorded_by=BY, **kwargs)


def names(app: OutcomesApplication, episode_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.episode_events(episode_id)]


def events_of(app: OutcomesApplication, episode_id: UUID, cls: type[Any]) -> list[Any]:
    return [e for e in app.episode_events(episode_id) if isinstance(e, cls)]


# -- safety -----------------------------------------------------------------------------------

def test_a_positive_item_9_raises_one_safety_alert_per_assessment(app):
    episode_id = open_episode(app)
    first = record(app, episode_id, 0, items=POSITIVE)
    (alert,) = first.alerts
    assert (alert.kind, alert.status, alert.raised_on, alert.assessment_id) == (
        "safety", "open", OPENED, "a-0")
    assert alert.rule.as_json() == get_rule_pack("phq9-item9").ref()
    assert alert.evidence == {"item9": 1, "score": 17}
    assert alert.explanation == (
        "PHQ-9 item 9 (thoughts of death or self-harm) answered 1 on 2026-01-05: review the "
        "patient's safety today (phq9-item9 v1.0.0)")
    raised = events_of(app, episode_id, Episode.AlertRaised)
    assert [(e.kind, e.caused_by, e.recorded_by) for e in raised] == [
        ("safety", "assessment:a-0", BY)]
    assert raised[0].alert_id == str(uuid5(episode_id, f"alert-{raised[0].originator_version}"))
    # the same record again (idempotent): nothing new; another positive one: a second alert
    assert record(app, episode_id, 0, items=POSITIVE).replayed
    record(app, episode_id, 7, items=[3, 3, 3, 3, 3, 3, 3, 3, 3])
    assert [(a.kind, a.assessment_id, a.evidence["item9"]) for a in app.alerts(episode_id)] == [
        ("safety", "a-7", 3), ("safety", "a-0", 1)]


def test_item_9_answered_0_or_a_total_only_raises_no_alert(app):
    episode_id = open_episode(app)
    assert record(app, episode_id, 0, items=NEGATIVE).alerts == ()
    assert record(app, episode_id, 7, 20).alerts == ()
    assert app.alerts(episode_id) == []
    assert "AlertRaised" not in names(app, episode_id)


def test_a_void_does_not_resolve_a_safety_alert(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, items=POSITIVE)
    app.void_assessment(episode_id, "a-0", reason="wrong patient", recorded_by=BY)
    (alert,) = app.alerts(episode_id)
    assert (alert.kind, alert.status) == ("safety", "open")


# -- overdue ----------------------------------------------------------------------------------

def test_overdue_at_exactly_overdue_days_and_not_a_day_before(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 15)
    assert app.flag_overdue(episode_id, today=on(27), overdue_days=28, recorded_by=BY).replayed
    assert app.alerts(episode_id) == []
    result = app.flag_overdue(episode_id, today=on(28), overdue_days=28, recorded_by=BY)
    (alert,) = result.alerts
    assert (alert.kind, alert.status, alert.raised_on, alert.assessment_id) == (
        "overdue", "open", on(28), "a-0")
    assert alert.rule.as_json() == get_rule_pack("overdue").ref()
    assert alert.evidence == {"last_assessment_id": "a-0", "last_on": "2026-01-05", "days": 28,
                              "overdue_days": 28}
    assert alert.explanation == ("No scorable PHQ-9 since PHQ-9 15 on 2026-01-05 (28 days >= "
                                 "28): an assessment is overdue (overdue v1.0.0)")
    # one unresolved overdue alert at a time
    assert app.flag_overdue(episode_id, today=on(40), overdue_days=28, recorded_by=BY).replayed
    assert len(app.alerts(episode_id)) == 1


def test_overdue_counts_from_the_opening_and_names_the_variant(app):
    episode_id = open_episode(app)
    assert app.flag_overdue(episode_id, today=on(20), overdue_days=21, recorded_by=BY).replayed
    (alert,) = app.flag_overdue(episode_id, today=on(21), overdue_days=21,
                                recorded_by=BY).alerts
    assert alert.assessment_id is None
    assert alert.rule.id == "overdue|overdue_days=21"
    assert alert.rule.as_json() == get_rule_pack("overdue|overdue_days=21").ref()
    assert alert.evidence["last_on"] == "2026-01-05"


def test_the_next_scorable_assessment_resolves_the_overdue_alert(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 15)
    record(app, episode_id, 10, 12)
    app.void_assessment(episode_id, "a-10", reason="entered in error", recorded_by=BY)
    # the voided day 10 does not count: 28 days from day 0
    (overdue,) = app.flag_overdue(episode_id, today=on(28), overdue_days=28,
                                  recorded_by=BY).alerts
    # an unscorable PHQ-9 (three items missing) and a GAD-7 do not resolve it
    record(app, episode_id, 29, items=[1, 1, 1, 1, 1, 1, None, None, None])
    record(app, episode_id, 29, instrument="GAD-7", assessment_id="g-29", total=8)
    assert app.alerts(episode_id)[0].status == "open"
    result = record(app, episode_id, 30, 11)
    (resolved,) = result.alerts
    assert (resolved.alert_id, resolved.status, resolved.resolved_by, resolved.resolution) == (
        overdue.alert_id, "resolved", BY, "assessment a-30 recorded on 2026-02-04")
    # and a new one can be raised 28 days after that assessment
    assert app.flag_overdue(episode_id, today=on(57), overdue_days=28, recorded_by=BY).replayed
    assert not app.flag_overdue(episode_id, today=on(58), overdue_days=28,
                                recorded_by=BY).replayed


def test_no_new_alert_on_a_closed_episode_and_bad_overdue_days(app):
    episode_id = open_episode(app)
    with pytest.raises(InvalidInputError):
        app.flag_overdue(episode_id, today=on(100), overdue_days=0, recorded_by=BY)
    app.close_episode(episode_id, discharged_on=on(1), recorded_by=BY)
    assert app.flag_overdue(episode_id, today=on(100), overdue_days=28, recorded_by=BY).replayed
    assert app.alerts(episode_id) == []


# -- off track (schueller2015-phq9: >= 17 at week 4, >= 13 at week 9, >= 9 at week 14) --------

def test_off_track_is_raised_once_and_clears_with_back_on_track(app):
    episode_id = open_episode(app)
    # day 0: 20 (baseline); day 14: 19 (week 2, no decision point yet)
    assert record(app, episode_id, 0, 20).alerts == ()
    assert record(app, episode_id, 14, 19).alerts == ()
    # day 28 (week 4): 17 >= 17, not on track -> one off-track alert
    (alert,) = record(app, episode_id, 28, 17).alerts
    pack = get_rule_pack("schueller2015-phq9")
    assert (alert.kind, alert.raised_on, alert.assessment_id, alert.rule.as_json()) == (
        "off_track", on(28), "a-28", pack.ref())
    assert alert.evidence == {"score": 17, "threshold": 17, "week": 4.0,
                              "decision_point": "week 4"}
    assert alert.explanation == ("PHQ-9 17 at week 4 is at or above 17, the week-4 cut-off for "
                                 "not on track (schueller2015-phq9 v1.0.0)")
    # day 35: 16; week 4 still rests on day 28 (closest to day 28): still not on track, no new
    # alert
    assert record(app, episode_id, 35, 16).alerts == ()
    # day 63 (week 9): 12 < 13 -> BackOnTrack naming the alert, which stays open
    assert record(app, episode_id, 63, 12).alerts == ()
    (back,) = events_of(app, episode_id, Episode.BackOnTrack)
    assert (back.rule, back.assessment_id, back.clinical_date, back.alert_ids,
            back.caused_by) == (pack.ref(), "a-63", on(63), [alert.alert_id], "assessment:a-63")
    assert back.evidence == {"score": 12, "threshold": 13, "week": 9.0,
                             "decision_point": "week 9"}
    assert app.alerts(episode_id)[0].status == "open"
    # day 98 (week 14): 9 >= 9 -> not on track again: a second off-track alert
    (again,) = record(app, episode_id, 98, 9).alerts
    assert (again.raised_on, again.evidence["decision_point"]) == (on(98), "week 14")
    assert [e.kind for e in events_of(app, episode_id, Episode.AlertRaised)] == [
        "off_track", "off_track"]


def test_just_below_the_cut_off_raises_nothing_and_a_void_moves_the_decision(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 20)
    assert record(app, episode_id, 28, 16).alerts == ()  # 16 < 17 at week 4
    # day 30 (18): week 4 still rests on day 28, the point closest to day 28
    assert record(app, episode_id, 30, 18).alerts == ()
    # voiding day 28 moves the week-4 decision to day 30: 18 >= 17, not on track
    (alert,) = app.void_assessment(episode_id, "a-28", reason="entered in error",
                                   recorded_by=BY).alerts
    assert (alert.kind, alert.assessment_id, alert.evidence["score"]) == ("off_track", "a-30", 18)
    assert events_of(app, episode_id, Episode.AlertRaised)[0].caused_by == "void:a-28"


def test_an_episode_of_an_instrument_without_a_default_pack_gets_no_off_track_alert(app):
    episode_id = app.open_episode(patient_ref="pt-2", clinic_id="clinic-a", recorded_by=BY,
                                  criteria="frank1991", instrument="HAM-D17",
                                  opened_on=OPENED).episode_id
    for day, total in ((0, 24), (28, 24), (63, 24)):
        assert record(app, episode_id, day, total, instrument="HAM-D17").alerts == ()
    assert app.get_episode(episode_id).signals == {}


def test_signals_watched_replaces_the_defaults(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 20)
    record(app, episode_id, 28, 15)  # on track under schueller2015-phq9 (15 < 17)
    stricter = get_rule_pack("schueller2015-phq9").with_params({"thresholds.4": 15})
    result = app.watch_signals(episode_id, packs=[stricter], curve=None,
                               reason="clinic policy", recorded_by=BY)
    (alert,) = result.alerts
    assert (alert.kind, alert.rule.id, alert.evidence["threshold"]) == (
        "off_track", "schueller2015-phq9|thresholds.4=15", 15)
    assert events_of(app, episode_id, Episode.AlertRaised)[0].caused_by == (
        f"watch:{result.version - 1}")
    assert app.watch_signals(episode_id, packs=[stricter], curve=None, reason="again",
                             recorded_by=BY).replayed


# -- the lifecycle ----------------------------------------------------------------------------

def safety_alert(app: OutcomesApplication) -> tuple[UUID, str]:
    episode_id = open_episode(app)
    (alert,) = record(app, episode_id, 0, items=POSITIVE).alerts
    return episode_id, alert.alert_id


def test_open_acknowledged_resolved(app):
    episode_id, alert_id = safety_alert(app)
    acknowledged = app.acknowledge_alert(episode_id, alert_id, action="contacted_patient",
                                         note="called; safety plan in place", recorded_by=BY)
    (alert,) = acknowledged.alerts
    assert (alert.status, alert.action, alert.note, alert.acknowledged_by) == (
        "acknowledged", "contacted_patient", "called; safety plan in place", BY)
    assert alert.acknowledged_at is not None and alert.acknowledged_at.tzinfo is not None
    with pytest.raises(AlertStateError):
        app.acknowledge_alert(episode_id, alert_id, action="other", recorded_by=BY)
    (resolved,) = app.resolve_alert(episode_id, alert_id, reason="seen in session",
                                    recorded_by="dr-okafor").alerts
    assert (resolved.status, resolved.resolved_by, resolved.resolution, resolved.action) == (
        "resolved", "dr-okafor", "seen in session", "contacted_patient")
    version = app.get_episode(episode_id).version
    for command in (lambda: app.resolve_alert(episode_id, alert_id, reason="x", recorded_by=BY),
                    lambda: app.acknowledge_alert(episode_id, alert_id, action="other",
                                                  recorded_by=BY)):
        with pytest.raises(AlertStateError):
            command()
    assert app.get_episode(episode_id).version == version  # nothing appended
    assert names(app, episode_id)[-2:] == ["AlertAcknowledged", "AlertResolved"]


def test_open_to_resolved_and_the_input_errors(app):
    episode_id, alert_id = safety_alert(app)
    version = app.get_episode(episode_id).version
    errors = [
        (AlertNotFoundError, lambda: app.acknowledge_alert(episode_id, str(uuid4()),
                                                           action="other", recorded_by=BY)),
        (AlertNotFoundError, lambda: app.resolve_alert(episode_id, "nope", reason="r",
                                                       recorded_by=BY)),
        (InvalidInputError, lambda: app.acknowledge_alert(episode_id, alert_id, action="called",
                                                          recorded_by=BY)),
        (InvalidInputError, lambda: app.acknowledge_alert(episode_id, alert_id, action="other",
                                                          note="x" * 2001, recorded_by=BY)),
        (InvalidInputError, lambda: app.resolve_alert(episode_id, alert_id, reason="  ",
                                                      recorded_by=BY)),
    ]
    for error, command in errors:
        with pytest.raises(error):
            command()
    assert app.get_episode(episode_id).version == version
    (alert,) = app.resolve_alert(episode_id, alert_id, reason="false positive: item misread",
                                 recorded_by=BY).alerts
    assert (alert.status, alert.acknowledged_by, alert.action) == ("resolved", None, None)


def test_a_closed_episode_completes_its_alerts_but_takes_no_support_review(app):
    episode_id, alert_id = safety_alert(app)
    app.close_episode(episode_id, discharged_on=on(1), recorded_by=BY)
    app.acknowledge_alert(episode_id, alert_id, action="referred", recorded_by=BY)
    app.resolve_alert(episode_id, alert_id, reason="referred to crisis team", recorded_by=BY)
    with pytest.raises(EpisodeClosedError):
        app.record_support_review(episode_id, domains=RATINGS, recorded_by=BY,
                                  clinical_date=on(1))


def test_a_support_review_is_recorded_after_an_alert(app):
    episode_id, alert_id = safety_alert(app)
    result = app.record_support_review(episode_id, alert_id=alert_id, domains=RATINGS,
                                       clinical_date=on(3), recorded_by=BY)
    (review,) = events_of(app, episode_id, Episode.SupportReviewRecorded)
    assert (review.review_id, review.alert_id, review.clinical_date, review.recorded_by) == (
        result.review_id, alert_id, on(3), BY)
    assert review.review_id == str(uuid5(episode_id, f"review-{review.originator_version}"))
    assert review.domains == {
        "alliance": {"rating": 4, "note": "good rapport"},
        "motivation": {"rating": 2, "note": ""},
        "social_support": {"rating": 3, "note": ""},
        "life_events": {"rating": 1, "note": "job loss"}}
    version = app.get_episode(episode_id).version
    bad = [({**RATINGS, "alliance": {"rating": 6}}, None, on(3), InvalidInputError),
           ({**RATINGS, "alliance": {"rating": True}}, None, on(3), InvalidInputError),
           ({k: v for k, v in RATINGS.items() if k != "life_events"}, None, on(3),
            InvalidInputError),
           ({**RATINGS, "mood": {"rating": 3}}, None, on(3), InvalidInputError),
           (RATINGS, None, on(-1), InvalidInputError),
           (RATINGS, "no-such-alert", on(3), AlertNotFoundError)]
    for domains, alert, day, error in bad:
        with pytest.raises(error):
            app.record_support_review(episode_id, alert_id=alert, domains=domains,
                                      clinical_date=day, recorded_by=BY)
    assert app.get_episode(episode_id).version == version


def test_alerts_are_listed_safety_first_then_off_track_then_overdue_newest_first(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, items=[3, 3, 3, 3, 2, 2, 2, 2, 1])  # 21, safety
    app.flag_overdue(episode_id, today=on(28), overdue_days=28, recorded_by=BY)
    record(app, episode_id, 28, 18)  # off track at week 4; resolves the overdue alert
    record(app, episode_id, 35, items=[2, 2, 2, 2, 2, 2, 2, 2, 2])  # 18, safety
    assert [(a.kind, a.raised_on, a.status) for a in app.alerts(episode_id)] == [
        ("safety", on(35), "open"), ("safety", on(0), "open"), ("off_track", on(28), "open"),
        ("overdue", on(28), "resolved")]


# -- batches, replay, snapshots ---------------------------------------------------------------

TRAJECTORY = [(0, POSITIVE), (14, 19), (28, 17), (35, POSITIVE), (63, 12), (98, 9)]


def steps(episode: Episode) -> list[Any]:
    made: list[Any] = [
        RecordStep(f"a-{day}", "PHQ-9", on(day), BY, items=value, total=None)
        if isinstance(value, list) else RecordStep(f"a-{day}", "PHQ-9", on(day), BY, total=value)
        for day, value in TRAJECTORY]
    return [*made, VoidStep("a-63", "entered in error", BY)]


def comparable(app: OutcomesApplication, episode_id: UUID) -> list[tuple[str, dict[str, Any]]]:
    return [(type(e).__name__, {k: v for k, v in vars(e).items() if k != "timestamp"})
            for e in app.episode_events(episode_id)]


def test_a_batch_raises_the_alerts_of_one_command_per_assessment(app):
    batched, single = uuid4(), open_episode(app)
    opened = app.get_episode(single)
    app.record_batch([EpisodePlan(batched, {
        "patient_ref": "pt-1", "clinic_id": "clinic-a", "recorded_by": BY,
        "opened_on": OPENED}, steps)])
    for step in steps(opened):
        if isinstance(step, RecordStep):
            app.record_assessment(single, instrument=step.instrument,
                                  administered=step.administered, items=step.items,
                                  total=step.total, assessment_id=step.assessment_id,
                                  recorded_by=BY)
        else:
            app.void_assessment(single, step.assessment_id, reason=step.reason, recorded_by=BY)
    kinds = [name for name, _ in comparable(app, single)]
    # safety on days 0 and 35, off track at week 4 (17) and week 14 (9), back on track at week
    # 9 (12); voiding day 63 leaves week 14 resting on day 98: nothing more
    assert kinds.count("AlertRaised") == 4 and kinds.count("BackOnTrack") == 1
    # the same events but for the episode's own ids (alert ids are uuid5 of the episode id)
    def strip(pairs: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        return [(n, {k: v for k, v in d.items()
                     if k not in ("originator_id", "alert_id", "stage_id", "alert_ids")})
                for n, d in pairs]
    assert strip(comparable(app, batched)) == strip(comparable(app, single))
    assert [len(d.get("alert_ids", ())) for _, d in comparable(app, batched)] == [
        len(d.get("alert_ids", ())) for _, d in comparable(app, single)]


def state(episode: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(episode).items() if k != "_pending_events"}


def test_replay_and_snapshots_hold_the_alerts(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, items=POSITIVE)
    record(app, episode_id, 28, 18)  # off track
    alert_id = app.alerts(episode_id)[0].alert_id
    app.acknowledge_alert(episode_id, alert_id, action="reviewed_in_session", recorded_by=BY)
    app.flag_overdue(episode_id, today=on(60), overdue_days=28, recorded_by=BY)
    day = 61
    while app.get_episode(episode_id).version < SNAPSHOT_INTERVAL + 5:
        record(app, episode_id, day, 12)
        day += 1
    assert app.snapshots is not None
    (snapshot,) = list(app.snapshots.get(episode_id))
    assert snapshot.originator_version == SNAPSHOT_INTERVAL
    restored = snapshot.episode
    replayed = project_events(None, app.events.get(episode_id, lte=SNAPSHOT_INTERVAL))
    assert state(restored) == state(replayed)
    # safety (day 0), off track (week 4: 18), overdue (day 60, resolved by day 61), back on
    # track (week 9: 12 < 13 on day 61), off track again (week 14: 12 >= 9 on day 91, v42)
    assert restored.alerts == replayed.alerts and len(restored.alerts) == 4
    assert restored.signals == {"schueller2015-phq9": "not_on_track"}
    latest = app.get_episode(episode_id)
    assert state(latest) == state(project_events(None, app.events.get(episode_id)))
    assert [(a.kind, a.raised_on, a.status) for a in app.alerts(episode_id)] == [
        ("safety", on(0), "acknowledged"), ("off_track", on(91), "open"),
        ("off_track", on(28), "open"), ("overdue", on(60), "resolved")]


# -- expected recovery (a hand-built curve: score = 16 - 4 ln(1 + week) for a moderately severe
# start; Cov [[0.25, -0.1], [-0.1, 0.04]], scale 9, t 1.3: at week 9 the band is [2.89, 10.69])

def curve() -> Any:
    from datetime import UTC, datetime

    from domain.signals.curves import BandCurve, RecoveryCurve
    band = BandCurve(band="moderately severe", episodes=240, observations=1310, intercept=16.0,
                     slope=-4.0, cov=(0.25, -0.1, 0.04), scale=9.0, t_quantile=1.3)
    return RecoveryCurve(
        clinic_id="clinic-a", instrument="PHQ-9", probability="0.8", min_episodes=30,
        fitted_at=datetime(2026, 6, 1, 12, 0, tzinfo=UTC), as_of=date(2026, 5, 31),
        episodes=252, episode_ids_hash="0" * 64, bands=(band,),
        band_counts={"moderately severe": 240, "severe": 12},
        pack=get_rule_pack("expected-recovery").ref())


def test_expected_recovery_raises_above_the_band_and_clears_within_it(app):
    episode_id = open_episode(app)
    pack = get_rule_pack("expected-recovery")
    # given as describe() documents, as the clinic's choice stores them
    app.watch_signals(episode_id, packs=[pack.describe()], curve=curve().describe(),
                      reason="clinic fit", recorded_by=BY)
    record(app, episode_id, 0, 16)  # moderately severe start
    (alert,) = record(app, episode_id, 63, 15).alerts  # 15 > 10.69 at week 9
    assert (alert.kind, alert.rule.as_json()) == ("off_track", pack.ref())
    assert alert.explanation == ("PHQ-9 15 at week 9 is above the expected 3-11 for a "
                                 "moderately severe start (expected-recovery v1.0.0, fitted on "
                                 "240 episodes)")
    assert (alert.evidence["expected"], alert.evidence["band"]) == (6.8, [2.9, 10.7])
    # day 64 (week 9.1): 10 is within [2.8, 10.6]: back on track
    record(app, episode_id, 64, 10)
    (back,) = events_of(app, episode_id, Episode.BackOnTrack)
    assert back.alert_ids == [alert.alert_id] and back.assessment_id == "a-64"


def test_expected_recovery_without_a_curve_is_insufficient_and_raises_nothing(app):
    episode_id = open_episode(app)
    app.watch_signals(episode_id, packs=[get_rule_pack("expected-recovery")], curve=None,
                      reason="no fit yet", recorded_by=BY)
    record(app, episode_id, 0, 16)
    assert record(app, episode_id, 63, 27).alerts == ()
    assert app.get_episode(episode_id).signals == {}


# -- review of issue 13 -----------------------------------------------------------------------

def test_a_later_decision_point_still_not_on_track_raises_a_new_alert_after_resolution(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 22)
    (week4,) = record(app, episode_id, 28, 20).alerts  # week 4: 20 >= 17
    app.resolve_alert(episode_id, week4.alert_id, reason="medication changed", recorded_by=BY)
    # day 63 (week 9): 18 >= 13, a new decision point still not on track: a new alert
    (week9,) = record(app, episode_id, 63, 18).alerts
    assert (week9.kind, week9.status, week9.assessment_id, week9.evidence) == (
        "off_track", "open", "a-63", {"score": 18, "threshold": 13, "week": 9.0,
                                      "decision_point": "week 9"})
    # day 66: week 9 still rests on day 63 (closest to day 63): no third alert
    assert record(app, episode_id, 66, 18).alerts == ()
    assert [a.evidence["decision_point"] for a in app.alerts(episode_id)] == ["week 9", "week 4"]


def test_a_new_decision_point_not_on_track_raises_an_alert_while_the_last_is_open(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 22)
    (week4,) = record(app, episode_id, 28, 20).alerts
    (week9,) = record(app, episode_id, 63, 13).alerts  # 13 >= 13 at week 9
    assert (week9.evidence["decision_point"], week4.status) == ("week 9", "open")


def test_resolved_off_track_alert_is_raised_again_by_a_later_assessment_only(app):
    # expected recovery has no decision points: after its alert is resolved, a later-dated
    # assessment still above the band raises a new one; an earlier-dated one does not
    episode_id = open_episode(app)
    pack = get_rule_pack("expected-recovery")
    app.watch_signals(episode_id, packs=[pack], curve=curve(), reason="fit", recorded_by=BY)
    record(app, episode_id, 0, 16)  # moderately severe start
    (first,) = [a for a in record(app, episode_id, 28, 19).alerts if a.kind == "off_track"]
    app.resolve_alert(episode_id, first.alert_id, reason="reviewed", recorded_by=BY)
    assert record(app, episode_id, 21, 19).alerts == ()  # dated before the alert's day 28
    (again,) = record(app, episode_id, 35, 19).alerts
    assert (again.kind, again.assessment_id) == ("off_track", "a-35")


def test_voiding_the_only_point_of_an_off_track_signal_withdraws_it(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 20)
    (alert,) = record(app, episode_id, 28, 20).alerts  # week 4: 20 >= 17
    app.void_assessment(episode_id, "a-28", reason="wrong patient", recorded_by=BY)
    # week 4 has no point any more: no signal at all; the signal is withdrawn, the alert open
    assert app.get_episode(episode_id).signals == {"schueller2015-phq9": "cleared"}
    (back,) = events_of(app, episode_id, Episode.BackOnTrack)
    pack = get_rule_pack("schueller2015-phq9")
    assert (back.rule, back.assessment_id, back.clinical_date, back.alert_ids,
            back.caused_by, back.evidence) == (
        pack.ref(), "a-28", on(28), [alert.alert_id], "void:a-28", {"withdrawn": True})
    assert back.explanation == (
        "The schueller2015-phq9 signal is withdrawn because assessment a-28, which it rested "
        "on, was voided: no remaining score gives a signal (schueller2015-phq9 v1.0.0)")
    assert app.alerts(episode_id)[0].status == "open"
    # a new week-4 point not on track raises a new alert
    (again,) = record(app, episode_id, 29, 19).alerts
    assert (again.kind, again.assessment_id) == ("off_track", "a-29")


def test_a_backdated_assessment_does_not_end_an_overdue_alert(app):
    episode_id = open_episode(app)
    record(app, episode_id, 0, 15)
    record(app, episode_id, 14, 14)
    (overdue,) = app.flag_overdue(episode_id, today=on(60), overdue_days=28,
                                  recorded_by=BY).alerts
    assert overdue.evidence["last_on"] == "2026-01-19"
    # a paper form of day 7 entered late, and one of day 14 itself: nothing after day 14
    assert record(app, episode_id, 7, 13).alerts == ()
    assert record(app, episode_id, 14, 12, assessment_id="b-14").alerts == ()
    assert app.alerts(episode_id)[0].status == "open"
    (resolved,) = record(app, episode_id, 15, 12).alerts
    assert (resolved.alert_id, resolved.status, resolved.resolution) == (
        overdue.alert_id, "resolved", "assessment a-15 recorded on 2026-01-20")
