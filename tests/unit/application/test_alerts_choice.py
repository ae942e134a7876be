"""Alerts under a clinic's choice of rule packs (ADR 0031, 0033), on both stores: the overdue
variant the clinic chose decides when an episode is overdue, and an episode opened while the
clinic chooses is watched by the choice."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

from application.outcomes import OutcomesApplication
from application.overdue import sweep_overdue
from application.signals import ClinicSignalChoices
from domain.episode import Episode
from domain.signals.clinic import ClinicSignals
from domain.signals.packs import get_rule_pack

OPENED = date(2026, 1, 5)
BY = "dr-lee"


def on(day: int) -> date:
    return OPENED + timedelta(days=day)


def open_episode(app: OutcomesApplication, clinic: str = "clinic-a") -> UUID:
    return app.open_episode(patient_ref="pt-1", clinic_id=clinic, recorded_by=BY,
                            instrument="PHQ-9", opened_on=OPENED).episode_id


def open_ids(app: OutcomesApplication) -> list[UUID]:
    return [UUID(str(n.originator_id)) for n in app.notifications(Episode.Opened.TOPIC)]


def record(app: OutcomesApplication, episode_id: UUID, day: int, total: int) -> None:
    app.record_assessment(episode_id, instrument="PHQ-9", administered=on(day), total=total,
                          assessment_id=f"a-{day}", recorded_by=BY)


def test_the_clinics_overdue_variant_decides_and_the_setting_is_the_default(app):
    ClinicSignalChoices(app, lambda clinic: open_ids(app)).choose_rule_packs(
        "clinic-a", packs=["schueller2015-phq9", "phq9-item9", "overdue|overdue_days=14"],
        reason="fortnightly measures", recorded_by="lead")
    ClinicSignalChoices(app, lambda clinic: open_ids(app)).choose_rule_packs(
        "clinic-b", packs=["schueller2015-phq9", "phq9-item9"], reason="no overdue pack",
        recorded_by="lead")
    fortnightly, chose_none, default = (open_episode(app, "clinic-a"),
                                        open_episode(app, "clinic-b"),
                                        open_episode(app, "clinic-c"))
    for episode_id in (fortnightly, chose_none, default):
        record(app, episode_id, 0, 15)
    # day 13: nobody; day 14: the clinic's 14 days (not the sweep's 21)
    assert sweep_overdue(app, lambda: open_ids(app), overdue_days=21, recorded_by="sweep",
                         today=on(13)).flagged == ()
    done = sweep_overdue(app, lambda: open_ids(app), overdue_days=21, recorded_by="sweep",
                         today=on(14))
    assert done.flagged == (fortnightly,)
    (alert,) = app.alerts(fortnightly)
    assert alert.rule.as_json() == get_rule_pack("overdue|overdue_days=14").ref()
    assert alert.evidence == {"last_assessment_id": "a-0", "last_on": "2026-01-05", "days": 14,
                              "overdue_days": 14}
    assert alert.explanation == ("No scorable PHQ-9 since PHQ-9 15 on 2026-01-05 (14 days >= "
                                 "14): an assessment is overdue (overdue|overdue_days=14 "
                                 "v1.0.0)")
    # without a chosen overdue pack, the sweep's setting (21 days)
    assert sweep_overdue(app, lambda: open_ids(app), overdue_days=21, recorded_by="sweep",
                         today=on(20)).flagged == ()
    done = sweep_overdue(app, lambda: open_ids(app), overdue_days=21, recorded_by="sweep",
                         today=on(21))
    assert set(done.flagged) == {chose_none, default}
    assert [a.rule.id for a in app.alerts(default)] == ["overdue|overdue_days=21"]



def test_an_episode_opened_during_a_choice_is_watched_by_the_choice(app):
    def clinic_open(clinic_id: str) -> list[UUID]:
        return [e for e in open_ids(app) if app.clinic_of(e) == clinic_id]

    choices = ClinicSignalChoices(app, clinic_open)
    original = app.clinic_signals

    def interleaved(clinic_id: str) -> ClinicSignals | None:
        # open_episode's first read sees no choice; the choice lands before the episode is
        # saved and is applied to the open episodes it can see (not yet this one)
        seen = original(clinic_id)
        app.clinic_signals = original  # type: ignore[method-assign]
        choices.choose_rule_packs(clinic_id, packs=["schueller2015-phq9|thresholds.4=10",
                                                    "phq9-item9", "overdue"],
                                  reason="lower week-4 cut-off", recorded_by="lead")
        return seen

    app.clinic_signals = interleaved  # type: ignore[method-assign]
    episode_id = open_episode(app)
    episode = app.get_episode(episode_id)
    assert episode.watching is not None
    assert [p["id"] for p in episode.watching["packs"]] == [
        "schueller2015-phq9|thresholds.4=10", "phq9-item9", "overdue"]
    assert [type(e).__name__ for e in app.episode_events(episode_id)] == [
        "Opened", "SignalsWatched"]
    # without a race: the choice rides in the opening's own save, no second SignalsWatched
    other = open_episode(app)
    assert [type(e).__name__ for e in app.episode_events(other)] == ["Opened", "SignalsWatched"]
