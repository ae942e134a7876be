"""On a few hundred generated episodes, each clinic's cohort figures (``CohortView.outcomes``,
served at ``GET /clinics/{id}/outcomes``) equal a shadow run's "now" figures for that clinic:
both count by the same rules (``domain.rules``), one from the read model's stored facts, the
other from the aggregate's own replay of each episode.

The episodes (seeded, in-memory store) have PHQ-9 courses under every built-in set, GAD-7 rows,
unscorable PHQ-9s (items missing), same-day amendments (G2), back-dated entries, voids,
adoptions of another set and discharges, at four clinics.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from application.outcomes import OutcomesApplication
from application.rescoring import RescoringLog, ShadowRuns
from domain.errors import DomainError
from projections.base import to_json
from projections.rescorings import RescoringStore
from projections.runner import ReadModels

NOW = datetime(2027, 12, 31, tzinfo=UTC)
START = date(2026, 1, 5)
CLINICS = ("clinic-0", "clinic-1", "clinic-2", "clinic-nhs")
LONGITUDINAL = ("acnp2006", "frank1991", "frank1991-rec26w", "acnp2006-symptom")
COURSE = ("nhs-talking-therapies-2024", "cms159")
EPISODES = 320


def generate(app: OutcomesApplication, rng: random.Random) -> None:
    for n in range(EPISODES):
        clinic = CLINICS[n % len(CLINICS)]
        if clinic == "clinic-nhs":
            criteria = rng.choice(("nhs-talking-therapies-2024",) * 3 + LONGITUDINAL)
        else:
            criteria = rng.choice(LONGITUDINAL + COURSE)
        episode_id = app.open_episode(patient_ref=f"pt-{n}", clinic_id=clinic, criteria=criteria,
                                      recorded_by="nurse", opened_on=START).episode_id
        phq, gad, day, recorded = rng.randint(3, 24), rng.randint(2, 20), START, []
        for _ in range(rng.randint(0, 18)):
            phq = max(0, min(27, phq + rng.randint(-6, 2 + (phq < 5))))
            gad = max(0, min(21, gad + rng.randint(-5, 3)))
            items: list[int | None] | None = None
            if rng.random() < 0.25:  # item scores; some with too many missing (unscorable, C2)
                items = [rng.choice([0, 1, 2, 3]) for _ in range(9)]
                for index in rng.sample(range(8), rng.choice([0, 1, 3, 4])):
                    items[index] = None
            result = app.record_assessment(episode_id, instrument="PHQ-9", administered=day,
                                           items=items, total=None if items else phq,
                                           recorded_by="nurse")
            recorded.append(result.assessment.assessment_id if result.assessment else "")
            if rng.random() < 0.6:
                app.record_assessment(episode_id, instrument="GAD-7", administered=day,
                                      total=gad, recorded_by="nurse")
            if rng.random() < 0.08:  # a same-day amendment (G2)
                app.record_assessment(episode_id, instrument="PHQ-9", administered=day,
                                      total=rng.randint(0, 27), recorded_by="nurse")
            day += timedelta(days=rng.choice([7, 7, 14, 14, 21, 35]))
        if rng.random() < 0.25 and recorded:  # the baseline too, sometimes
            app.void_assessment(episode_id, rng.choice(recorded), reason="wrong form",
                                recorded_by="nurse")
        if rng.random() < 0.2:
            app.record_assessment(episode_id, instrument="PHQ-9", recorded_by="nurse",
                                  administered=START + timedelta(days=rng.randint(1, 90)),
                                  total=rng.randint(0, 27))
        # Adopting another set, or closing: a set that cannot stage the episode is refused
        with contextlib.suppress(DomainError):
            if rng.random() < 0.15:
                app.adopt_criteria(episode_id, criteria=rng.choice(LONGITUDINAL + COURSE),
                                   reason="clinic policy", recorded_by="lead")
            if rng.random() < 0.5:
                app.close_episode(episode_id, discharged_on=day - timedelta(days=7),
                                  recorded_by="nurse")


@pytest.fixture(scope="module")
def generated() -> tuple[OutcomesApplication, ReadModels]:
    app = OutcomesApplication({}, clock=lambda: NOW)
    generate(app, random.Random(20261201))
    models = ReadModels.open(app, None)
    models.catch_up()
    return app, models


def as_json(value: Any) -> Any:
    return json.loads(to_json(value))


@pytest.mark.parametrize("clinic_id", CLINICS)
def test_a_clinics_figures_equal_a_shadow_runs_now_figures(
        generated: tuple[OutcomesApplication, ReadModels], clinic_id: str) -> None:
    app, models = generated
    runs = ShadowRuns(app, RescoringLog({}), RescoringStore(None))
    # When a shadow run (under any set) is made for the clinic as of now
    run = runs.request(criteria="acnp2006", clinic_id=clinic_id, recorded_by="lead")
    assert runs.execute(run.run_id) == "completed"
    state = runs.store.run(run.run_id)
    assert state is not None
    # Then its "now" figures are the clinic's figures, every one of them
    clinic = as_json(asdict(models.cohort.outcomes(clinic_id)))
    assert state["figures"]["now"] == clinic
    assert clinic["episodes"] == EPISODES // len(CLINICS)


def test_the_generated_cohort_exercises_every_figure(
        generated: tuple[OutcomesApplication, ReadModels]) -> None:
    _, models = generated
    figures = [models.cohort.outcomes(c) for c in CLINICS]
    assert all(0 < f.evaluable < f.episodes and f.closed > 0 for f in figures)
    assert all(f.below_threshold > 0 for f in figures)
    for milestone in ("response", "partial_remission", "remission", "recovery", "relapse",
                      "recurrence"):
        assert sum(f.counts[milestone] for f in figures) > 0, milestone
    nhs = figures[CLINICS.index("clinic-nhs")].talking_therapies
    assert nhs is not None
    assert nhs.finished_courses > nhs.case_at_start > 0 and nhs.not_case_at_start > 0
    assert nhs.recovery.count > 0 and nhs.reliable_improvement.count > 0
    assert nhs.recovery.denominator == nhs.finished_courses - nhs.not_case_at_start
