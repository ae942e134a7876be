"""A repeated request is answered with its first result, whatever changed since; dates keep
their order."""

from __future__ import annotations

from api_helpers import PROBLEM_TYPE


def _assessment(day: str, total: int) -> dict[str, object]:
    return {"assessment_id": f"a-{day}", "instrument": "PHQ-9", "administered_on": day,
            "total": total}


def test_a_retry_after_discharge_gets_the_first_result_not_a_conflict(api, client):
    episode_id = api.open(criteria="acnp2006")
    url = f"/episodes/{episode_id}/assessments"
    first = client.post(url, json=_assessment("2026-01-05", 18))
    assert client.post(f"/episodes/{episode_id}/close",
                       json={"discharged_on": "2026-01-20"}).status_code == 200
    position = api.position()
    retry = client.post(url, json=_assessment("2026-01-05", 18))
    assert retry.status_code == 200
    assert retry.json()["assessment_id"] == first.json()["assessment_id"]
    assert retry.json()["replayed"] is True
    assert api.position() == position
    new = client.post(url, json=_assessment("2026-01-12", 9))
    assert new.status_code == 409
    assert new.json()["code"] == "episode-closed"


def test_a_retry_carrying_its_original_if_match_gets_the_first_result(api, client):
    episode_id = api.open()
    url = f"/episodes/{episode_id}/assessments"
    first = client.post(url, json=_assessment("2026-01-05", 18), headers={"If-Match": '"1"'})
    assert first.status_code == 201
    assert first.headers["ETag"] == '"2"'
    retry = client.post(url, json=_assessment("2026-01-05", 18), headers={"If-Match": '"1"'})
    assert retry.status_code == 200
    assert retry.json()["stage_events"] == first.json()["stage_events"]
    stale = client.post(url, json=_assessment("2026-01-12", 16), headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    assert stale.json()["code"] == "version-conflict"


def test_a_discharge_before_the_episode_opened_is_refused_and_changes_nothing(api, client):
    episode_id = api.open()  # opened on 2026-01-05
    position = api.position()
    response = client.post(f"/episodes/{episode_id}/close", json={"discharged_on": "2026-01-04"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.json()["field"] == "discharged_on"
    assert api.position() == position
