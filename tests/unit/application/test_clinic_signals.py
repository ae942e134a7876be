"""A clinic's choice of rule packs and its recorded recovery fits (ClinicSignals; ADR 0033):
recorded as events, applied to the clinic's open episodes with SignalsWatched, and to every
episode opened afterwards; on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from fit_helpers import cohort

from application.outcomes import OutcomesApplication
from application.recovery_fit import fit_recovery_curve
from application.signals import ClinicSignalChoices
from domain.episode import Episode
from domain.errors import InvalidInputError, UnknownRulePackError
from domain.signals.clinic import ClinicSignals
from domain.signals.packs import get_rule_pack

OPENED = date(2027, 1, 4)


def open_at(app: OutcomesApplication, clinic: str, instrument: str = "PHQ-9",
            criteria: str = "acnp2006") -> UUID:
    return app.open_episode(patient_ref=f"pt-{instrument}", clinic_id=clinic, recorded_by="u1",
                            instrument=instrument, criteria=criteria, opened_on=OPENED).episode_id


def choices(app: OutcomesApplication, episodes: list[UUID]) -> ClinicSignalChoices:
    """The use cases with the clinic's open episodes as the read model would list them."""
    return ClinicSignalChoices(app, lambda clinic: [
        e for e in episodes if app.clinic_of(e) == clinic and not app.get_episode(e).is_closed])


def names(app: OutcomesApplication, episode_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.episode_events(episode_id)]


def test_a_choice_is_recorded_and_watches_the_open_episodes_it_applies_to(
        app: OutcomesApplication) -> None:
    phq, qids = open_at(app, "c1"), open_at(app, "c1", "QIDS-SR16")
    closed = app.open_episode(patient_ref="pt-x", clinic_id="c1", recorded_by="u1",
                              opened_on=OPENED).episode_id
    app.close_episode(closed, discharged_on=OPENED, recorded_by="u1")
    other = open_at(app, "c2")
    use = choices(app, [phq, qids, closed, other])
    done = use.choose_rule_packs("c1", packs=["schueller2015-phq9", "phq9-item9", "overdue"],
                                 reason="clinic protocol 2027", recorded_by="lead")
    assert (done.recorded, set(done.watched), done.unchanged, done.skipped) == (
        True, {phq, qids}, (), ())
    watched = app.episode_events(phq)[-1]
    assert isinstance(watched, Episode.SignalsWatched)
    assert [p["id"] for p in watched.packs] == ["schueller2015-phq9", "phq9-item9", "overdue"]
    assert (watched.curve, watched.reason, watched.recorded_by) == (
        None, "the clinic's choice: clinic protocol 2027", "lead")
    qids_watched = app.episode_events(qids)[-1]
    assert isinstance(qids_watched, Episode.SignalsWatched)  # Schueller's PHQ-9 cut points do
    assert [p["id"] for p in qids_watched.packs] == ["phq9-item9", "overdue"]  # not apply
    assert names(app, other) == ["Opened"] and "SignalsWatched" not in names(app, closed)
    clinic = app.clinic_signals("c1")
    assert clinic is not None and clinic.id == ClinicSignals.id_for("c1")
    assert [p["id"] for p in clinic.packs or []] == ["schueller2015-phq9", "phq9-item9", "overdue"]
    again = use.choose_rule_packs("c1", packs=["schueller2015-phq9", "phq9-item9", "overdue"],
                                  reason="again", recorded_by="lead")
    assert (again.recorded, again.watched, set(again.unchanged)) == (False, (), {phq, qids})


def test_an_episode_opened_after_the_choice_is_watched_from_its_opening(
        app: OutcomesApplication) -> None:
    choices(app, []).choose_rule_packs("c1", packs=["overdue|overdue_days=21"],
                                       reason="weekly sessions", recorded_by="lead")
    episode = open_at(app, "c1")
    assert names(app, episode) == ["Opened", "SignalsWatched"]
    watched = app.episode_events(episode)[1]
    assert isinstance(watched, Episode.SignalsWatched)
    assert [p["id"] for p in watched.packs] == ["overdue|overdue_days=21"]
    assert names(app, open_at(app, "c2")) == ["Opened"]  # another clinic: the defaults


def test_a_bad_choice_records_nothing(app: OutcomesApplication) -> None:
    use = choices(app, [])
    with pytest.raises(UnknownRulePackError):
        use.choose_rule_packs("c1", packs=["nope"], reason="r", recorded_by="lead")
    with pytest.raises(InvalidInputError):
        use.choose_rule_packs("c1", packs=["overdue"], reason=" ", recorded_by="lead")
    with pytest.raises(InvalidInputError):
        use.choose_rule_packs("c1", packs=[], reason="r", recorded_by="lead")
    assert app.clinic_signals("c1") is None


def test_a_recorded_fit_reads_back_equal_and_reaches_the_episodes_watched_by_expected_recovery(
        app: OutcomesApplication) -> None:
    pack = get_rule_pack("expected-recovery").with_params({"min_episodes": 5})
    curve = fit_recovery_curve("c1", "HAM-D17", cohort(6, seed=5), pack=pack,
                               now=datetime(2027, 6, 1, tzinfo=UTC), as_of=date(2027, 5, 31))
    hamd = open_at(app, "c1", "HAM-D17", criteria="frank1991")
    use = choices(app, [hamd])
    use.choose_rule_packs("c1", packs=["expected-recovery|min_episodes=5"], reason="own norms",
                          recorded_by="lead")
    first = app.episode_events(hamd)[-1]
    assert isinstance(first, Episode.SignalsWatched) and first.curve is None  # no fit yet
    done = use.record_recovery_fit(curve, recorded_by="lead")
    assert (done.recorded, done.watched) == (True, (hamd,))
    stored = app.clinic_signals("c1")
    assert stored is not None
    back = stored.curve("HAM-D17")
    assert back == curve and back is not None and back.hash == curve.hash
    watched = app.episode_events(hamd)[-1]
    assert isinstance(watched, Episode.SignalsWatched) and watched.curve == curve.describe()
    assert use.record_recovery_fit(curve, recorded_by="lead").recorded is False
    another = fit_recovery_curve("c2", "HAM-D17", [], pack=pack, now=curve.fitted_at,
                                 as_of=curve.as_of)
    with pytest.raises(InvalidInputError):
        stored.record_fit(curve=another, recorded_by="lead")
