"""A backup taken before an erasure, restored: the erasure log re-applied by ``outcomes restore``
leaves the erased patients erased (issue 11: "a restore of a backup taken before erasure
followed by the erasure log re-applied leaves them erased"; GDPR Art. 17), on SQLite and
PostgreSQL, with encryption on."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from backup_helpers import answers, client_for, import_trial, new_key, open_services, settings_for

from application.erasure import erase_patient
from trust.backup import backup
from trust.restore import restore
from trust.verify import verify

pytestmark = pytest.mark.file_store
REASON = "GDPR Art. 17 request of 2026-11-30"


def test_patients_erased_after_the_backup_stay_erased_after_a_restore(
        store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    settings = settings_for(store, request, tmp_path / "var", cipher_key=new_key())
    services = open_services(settings)
    try:
        assert import_trial(services) == 12
        with client_for(services, settings) as client:
            before = answers(client)
            erased = [episode_id for episode_id, _, _ in before["episodes"][:2]]
            refs = [client.get(f"/episodes/{e}").json()["patient_ref"] for e in erased]
        backup(settings, tmp_path / "backup")  # before the erasures
        for ref in refs:
            erase_patient(services, ref, REASON, "admin-1", erasure_log=settings.erasure_log_path())
    finally:
        services.close()

    result = restore(settings, tmp_path / "backup", force=True)
    assert [(r.destroyed, r.position is not None) for r in result.erasures] == [(1, True)] * 2
    assert sorted(e for r in result.erasures for e in r.episode_ids) == sorted(erased)

    services = open_services(settings)
    try:
        with client_for(services, settings) as client:
            for episode_id in erased:
                for path in ("", "/assessments", "/stages"):
                    response = client.get(f"/episodes/{episode_id}{path}")
                    assert response.status_code == 404, (path, response.text)
            after = answers(client)
            assert client.get("/episodes", params={"patient_ref": refs[0]}).json()["items"] == []
    finally:
        services.close()
    kept = [e for e in before["episodes"] if e[0] not in erased]
    assert after["episodes"] == kept
    assert after["cohort"]["episodes"] == before["cohort"]["episodes"] - 2 == 10
    assert verify(settings).ok
    if store == "sqlite":
        assert stat.S_IMODE(settings.erasure_log_path().stat().st_mode) == 0o600
