"""Erasure and the caseload (ADR 0023, ADR 0032): an erased patient's episode leaves the
caseload, its unacknowledged safety alert leaves /health's safety_overdue, a rebuild gives the
same rows, and ``outcomes audit verify`` finds the caseload read model agreeing with the events."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from uuid import UUID

import pytest
from keys_helpers import CLINIC, NOW, client_for, encrypted, open_services

from application.erasure import erase_patient
from trust.verify import verify

ITEM9 = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # PHQ-9 17, item 9 answered 1: a safety alert


def test_an_erased_patient_leaves_the_caseload_and_the_safety_count(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        app = services.app
        kept, erased = (app.open_episode(patient_ref=ref, clinic_id=CLINIC, recorded_by="dr-a",
                                         opened_on=date(2026, 1, 5)).episode_id
                        for ref in ("p-kept", "p-erased"))
        for episode_id in (kept, erased):
            app.record_assessment(episode_id, instrument="PHQ-9", administered=date(2026, 1, 5),
                                  items=ITEM9, recorded_by="nurse")
        with client_for(services, settings) as client:
            listed = client.get(f"/clinics/{CLINIC}/caseload").json()["items"]
            assert sorted(i["episode_id"] for i in listed) == sorted([str(kept), str(erased)])
            services.read_models.catch_up(["caseload"])
            assert client.get("/health").json()["safety_overdue"] == 2

            erase_patient(services, "p-erased", "GDPR Art. 17 request", "admin-1",
                          erasure_log=settings.erasure_log_path())
            listed = client.get(f"/clinics/{CLINIC}/caseload").json()["items"]
            assert [i["episode_id"] for i in listed] == [str(kept)]
            assert client.get("/health").json()["safety_overdue"] == 1
            view = services.read_models.caseload
            with view.reading() as cursor:
                cursor.execute("SELECT episode_id FROM caseload_safety")
                assert [r["episode_id"] for r in cursor.fetchall()] == [str(kept)]
            assert view.safety_overdue(now=NOW, safety_ack_hours=24) == 1

            services.read_models.rebuild("caseload")
            listed = client.get(f"/clinics/{CLINIC}/caseload").json()["items"]
            assert [i["episode_id"] for i in listed] == [str(kept)]
            assert client.get("/health").json()["safety_overdue"] == 1
        assert UUID(listed[0]["episode_id"]) == kept
        services.read_models.catch_up()  # every read model past the erasure, as verify needs
        report = verify(settings, services=services, deep=True)
        assert report.ok, report.faults
    finally:
        services.close()
