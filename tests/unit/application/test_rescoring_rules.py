"""The clinic's cohort figures and a shadow run's figures count episodes by the same rules.

Given episodes recorded through the application (in-memory store, clock stopped at 2027-12-31
UTC), the cohort read model (``CohortView.outcomes``, served at ``GET /clinics/{id}/outcomes``)
and a shadow run for that clinic as of now must agree on every figure: "evaluable" (G5), the
milestones (response ... recurrence) and the NHS Talking Therapies figures (SPEC §2.4).
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog, ShadowRuns
from projections.rescorings import RescoringStore
from projections.runner import ReadModels

NOW = datetime(2027, 12, 31, tzinfo=UTC)
NURSE = "nurse-1"
# V7 of the public vectors (SPEC §5): under frank1991 recovery on 04-27, recurrence on 08-17.
V7 = [("2026-01-05", 17), ("2026-01-19", 10), ("2026-02-02", 6), ("2026-02-16", 4),
      ("2026-03-02", 3), ("2026-03-16", 2), ("2026-03-30", 3), ("2026-04-27", 2),
      ("2026-05-25", 3), ("2026-06-22", 2), ("2026-07-20", 4), ("2026-08-17", 13),
      ("2026-08-31", 15)]


def new_app() -> OutcomesApplication:
    return OutcomesApplication({}, clock=lambda: NOW)


def plain(value: Any) -> Any:
    """Figures as JSON-like data (a dataclass or a dict)."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def open_episode(app: OutcomesApplication, clinic_id: str, criteria: str,
                 opened_on: str = "2026-01-05") -> UUID:
    return app.open_episode(patient_ref="pt-1", clinic_id=clinic_id, recorded_by=NURSE,
                            criteria=criteria, opened_on=date.fromisoformat(opened_on)).episode_id


def record(app: OutcomesApplication, episode_id: UUID, rows: list[tuple[str, int]],
           instrument: str = "PHQ-9") -> None:
    for day, total in rows:
        app.record_assessment(episode_id, instrument=instrument, total=total, recorded_by=NURSE,
                              administered=date.fromisoformat(day))


def cohort(app: OutcomesApplication, clinic_id: str) -> dict[str, Any]:
    models = ReadModels.open(app, None)
    models.catch_up()
    figures: dict[str, Any] = plain(models.cohort.outcomes(clinic_id))
    return figures


def shadow_now(app: OutcomesApplication, clinic_id: str, criteria: str = "acnp2006"
               ) -> tuple[dict[str, Any], RescoringStore, UUID]:
    """A completed shadow run for the clinic as of now: (figures, store, run id)."""
    log, store = RescoringLog({}), RescoringStore(None)
    run = ShadowRuns(app, log, store).request(criteria=criteria, params=None, clinic_id=clinic_id,
                  as_of=None, recorded_by="lead-7")
    assert ShadowRuns(app, log, store).execute(run.run_id) == "completed"
    state = store.run(run.run_id)
    assert state is not None
    return state["figures"], store, run.run_id


# -- the two cases in which the copies of the rules disagreed ---------------------------------

def test_an_unscorable_phq9_beside_a_gad7_is_not_evaluable_in_either_figure() -> None:
    # Given an episode whose only PHQ-9 has four items missing (unscorable, C2) and a GAD-7
    app = new_app()
    episode_id = open_episode(app, "clinic-u", "acnp2006")
    app.record_assessment(episode_id, instrument="PHQ-9", recorded_by=NURSE,
                          administered=date(2026, 1, 5),
                          items=[1, None, None, None, 0, 0, 0, 0, 0])
    record(app, episode_id, [("2026-01-05", 12)], instrument="GAD-7")
    # Then it has no baseline (G4), so neither the clinic's figures nor a shadow run's "now"
    # figures count it as evaluable (G5)
    assert cohort(app, "clinic-u")["evaluable"] == 0
    figures, store, run_id = shadow_now(app, "clinic-u")
    assert figures["now"]["evaluable"] == 0
    result = store.episode(run_id, episode_id)
    assert result is not None and result["milestones_now"]["evaluable"] is False


def test_a_shadow_run_counts_recurrence_like_the_clinic() -> None:
    # Given V7 recorded under frank1991: recovery, then a recurrence on 2026-08-17
    app = new_app()
    record(app, open_episode(app, "clinic-r", "frank1991"), V7)
    # Then both figures count one recurrence of one evaluable episode
    assert cohort(app, "clinic-r")["counts"]["recurrence"] == 1
    figures, _, _ = shadow_now(app, "clinic-r", criteria="frank1991")
    assert figures["now"]["counts"]["recurrence"] == 1
    assert figures["now"]["rates"]["recurrence"] == 100.0
    assert figures["new"]["counts"]["recurrence"] == 1


# -- NHS Talking Therapies figures (SPEC §2.4) ----------------------------------------------

NHSTT = "nhs-talking-therapies-2024"
# A case at start (PHQ-9 16 >= 10) that ends below caseness on both measures, PHQ-9 down 10
# (>= 6): recovery, reliable improvement, reliable recovery.
RECOVERED = ([("2026-01-05", 16), ("2026-01-19", 12), ("2026-02-02", 8), ("2026-02-16", 6)],
             [("2026-01-05", 12), ("2026-01-19", 9), ("2026-02-02", 6), ("2026-02-16", 5)])
# Not a case at start (PHQ-9 8 < 10, GAD-7 6 < 8), no reliable change.
NOT_A_CASE = ([("2026-01-05", 8), ("2026-01-19", 7), ("2026-02-02", 6)],
              [("2026-01-05", 6), ("2026-01-19", 5), ("2026-02-02", 4)])
# One treatment appointment only: not a finished course (M076).
TOO_SHORT = ([("2026-01-05", 18), ("2026-01-19", 4)], [("2026-01-05", 15), ("2026-01-19", 3)])


def record_courses(app: OutcomesApplication, clinic_id: str, criteria: str) -> None:
    """RECOVERED, NOT_A_CASE and TOO_SHORT discharged at their last date; RECOVERED again, open."""
    for (phq, gad), discharge in ((RECOVERED, True), (NOT_A_CASE, True), (TOO_SHORT, True),
                                  (RECOVERED, False)):
        episode_id = open_episode(app, clinic_id, criteria)
        record(app, episode_id, phq)
        record(app, episode_id, gad, instrument="GAD-7")
        if discharge:
            app.close_episode(episode_id, discharged_on=date.fromisoformat(phq[-1][0]),
                              recorded_by=NURSE)


def rate(count: int, denominator: int, percent: float | None) -> dict[str, Any]:
    return {"count": count, "denominator": denominator, "percent": percent}


EXPECTED_NHSTT = {
    "finished_courses": 2, "case_at_start": 1, "not_case_at_start": 1,
    # recovery and reliable recovery: finished courses minus those not at caseness (M192, M195)
    "recovery": rate(1, 1, 100.0), "reliable_recovery": rate(1, 1, 100.0),
    # improvement, deterioration, no reliable change: all finished courses (M186, M1010, M187)
    "reliable_improvement": rate(1, 2, 50.0), "reliable_deterioration": rate(0, 2, 0.0),
    "no_reliable_change": rate(1, 2, 50.0),
}


def test_a_closed_course_that_recovered_counts_as_recovery_in_the_clinic_figures() -> None:
    app = new_app()
    record_courses(app, "clinic-n", NHSTT)
    figures = cohort(app, "clinic-n")
    assert (figures["episodes"], figures["closed"]) == (4, 3)
    assert figures["talking_therapies"] == EXPECTED_NHSTT
    # NHS TT has no longitudinal stages: no course is evaluable for response ... recurrence
    assert figures["evaluable"] == 0


def test_a_shadow_run_under_nhs_talking_therapies_gives_the_same_course_figures() -> None:
    # Given the same courses recorded under acnp2006
    app = new_app()
    record_courses(app, "clinic-s", "acnp2006")
    # When re-scored under NHS TT, the new figures count the finished courses only
    figures, _, _ = shadow_now(app, "clinic-s", criteria=NHSTT)
    assert figures["new"]["talking_therapies"] == EXPECTED_NHSTT
    assert figures["now"]["talking_therapies"] is None
