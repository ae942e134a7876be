"""Episode snapshots under per-patient encryption (ADR 0025, ADR 0023): a snapshot is sealed
with its patient's data key like the episode's events, so erasing the patient shreds it too and
every answer about the episode is then a 404, never a 500. In memory and on PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from keys_helpers import client_for, encrypted, open_services

from application.erasure import erase_patient
from bootstrap import Services
from domain.episode import Episode
from domain.errors import EpisodeNotFoundError
from trust.cipher import ErasedEvent, is_encrypted, key_id_of

SCORES = (18, 16, 13, 8, 6, 4, 3, 4, 2, 3)
START = date(2024, 1, 1)
PATIENT = "pt-snapshot-7"


def long_episode(services: Services, assessments: int = 60) -> UUID:
    app = services.app
    episode_id = app.open_episode(patient_ref=PATIENT, clinic_id="clinic-a", recorded_by="t",
                                  criteria="acnp2006", opened_on=START).episode_id
    for n in range(assessments):
        app.record_assessment(episode_id, instrument="PHQ-9", total=SCORES[n % len(SCORES)],
                              administered=START + timedelta(days=3 * n), recorded_by="t")
    return episode_id


def stored_snapshots(services: Services, episode_id: UUID) -> list[Any]:
    assert services.app.snapshots is not None
    return list(services.app.snapshots.recorder.select_events(episode_id))


def test_a_snapshot_is_sealed_with_the_patients_key_and_shredded_by_erasure(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = encrypted(store, request, tmp_path)
    services = open_services(settings)
    try:
        app = services.app
        episode_id = long_episode(services)
        [row] = stored_snapshots(services, episode_id)
        assert row.originator_version == 50
        assert row.topic == Episode.Snapshot.TOPIC
        assert is_encrypted(row.state)
        patient_key = app.mapper.keys.key_for_episode(str(episode_id))  # type: ignore[attr-defined]
        assert key_id_of(row.state) == patient_key
        assert key_id_of(app.recorder.select_events(episode_id, lte=1)[0].state) == patient_key
        assert PATIENT.encode() not in bytes(row.state)
        assert app.get_episode(episode_id, version=55).version == 55

        erase_patient(services, PATIENT, "GDPR Art. 17 request", "admin-1")
        assert isinstance(app.mapper.to_domain_event(row), ErasedEvent)
        assert list(app.snapshots.get(episode_id)) == []  # type: ignore[union-attr]
        with pytest.raises(EpisodeNotFoundError):
            app.get_episode(episode_id)
        with pytest.raises(EpisodeNotFoundError):
            app.get_episode(episode_id, version=55)
        with client_for(services, settings) as client:
            for path in ("", "/assessments", "/stages"):
                response = client.get(f"/episodes/{episode_id}{path}")
                assert response.status_code == 404, (path, response.text)
    finally:
        services.close()
