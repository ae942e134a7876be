"""A shadow run in worker processes over a real imported file (the HAM-D17 trial, encryption on)
keeps exactly today's results (``rescoring_helpers.by_the_old_path``), leaves erased patients'
episodes out, and a clinic's run only that clinic's episodes; on SQLite files and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest
from keys_helpers import CLINIC, encrypted, import_trial, open_services
from rescoring_helpers import by_the_old_path, counts, stored_rows

from application.erasure import erase_patient

pytestmark = pytest.mark.file_store


@pytest.fixture
def trial(store: str, request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        assert import_trial(services).episodes_opened == 172
        yield services
    finally:
        services.close()


def test_workers_keep_todays_results_without_the_erased_or_other_clinics(trial: Any) -> None:
    services = trial
    app = services.app
    other = [app.open_episode(patient_ref=f"b{n}", clinic_id="clinic-b", recorded_by="c-1",
                              criteria="frank1991", instrument="HAM-D17",
                              opened_on=date(2004, 1, 5)).episode_id for n in range(3)]
    for episode_id in other:
        for week, total in enumerate((24, 15, 9, 6)):
            app.record_assessment(episode_id, instrument="HAM-D17", recorded_by="c-1",
                                  total=total, administered=date(2004, 1, 5 + 7 * week))
    ids = sorted(str(e) for e in services.read_models.open_episodes(CLINIC))
    erased = ids[:2]
    for episode_id in erased:
        ref = app.get_episode(UUID(episode_id)).patient_ref
        erase_patient(services, ref, "GDPR Art. 17 request", "admin-1")
    runs = services.shadow_runs
    for clinic, total in ((None, 173), (CLINIC, 170)):
        run = runs.request(criteria="acnp2006", clinic_id=clinic, recorded_by="lead-7")
        assert runs.execute(run.run_id, workers=3) == "completed"
        kept = stored_rows(services.rescorings, run.run_id)
        assert kept == by_the_old_path(app, services.runs, run.run_id)
        assert not set(erased) & set(kept)
        assert ({str(e) for e in other} <= set(kept)) is (clinic is None)
        state = counts(services.rescorings, run.run_id)
        assert (state["status"], state["episodes"]) == ("completed", total)
        # read: every readable episode; the store's Opened events still count the erased two
        assert (state["processed"], state["total"]) == (173, 175)
