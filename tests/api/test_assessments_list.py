"""GET /episodes/{id}/assessments: what a chart of the episode needs, in clinical order."""

from __future__ import annotations

import pytest
from api_helpers import PROBLEM_TYPE
from local_issuer import SUB, bearer

FIELDS = {"assessment_id", "instrument", "administered_on", "administered_at", "items",
          "reported_total", "total", "total_exact", "severity", "flags", "voided",
          "void_reason", "recorded_at", "recorded_by"}


def test_assessments_are_listed_in_clinical_order_with_voids_marked(api, client):
    # Given records entered out of clinical order: a back-dated form, a 09:00 paper form
    # entered after the 17:00 administration of the same day, and one entered in error
    episode_id = api.open()
    recorded = {}
    for aid, when, total in (("jan-12", "2026-01-12", 16), ("jan-05", "2026-01-05", 18),
                             ("jan-19-pm", "2026-01-19T17:00:00+00:00", 13),
                             ("jan-19-am", "2026-01-19T09:00:00+00:00", 14),
                             ("jan-26", "2026-01-26", 8)):
        recorded[aid] = api.record(episode_id, when, total, assessment_id=aid)["assessment"]
    client.post(f"/episodes/{episode_id}/assessments/jan-26/void",
                json={"reason": "wrong patient"}, headers=bearer(sub="nurse-2"))
    # When the chart asks for them
    body = api.get(f"/episodes/{episode_id}/assessments")
    # Then they come by date, then administration time, voided ones marked with the reason
    assert body["episode_id"] == episode_id
    items = body["items"]
    assert [a["assessment_id"] for a in items] == [
        "jan-05", "jan-12", "jan-19-am", "jan-19-pm", "jan-26"]
    assert all(a.keys() == FIELDS for a in items)
    assert [(a["total"], a["severity"]) for a in items] == [
        (18, "moderately severe"), (16, "moderately severe"), (14, "moderate"),
        (13, "moderate"), (8, "mild")]
    assert [a["administered_at"] for a in items] == [
        None, None, "2026-01-19T09:00:00+00:00", "2026-01-19T17:00:00+00:00", None]
    assert [(a["voided"], a["void_reason"]) for a in items] == [(False, None)] * 4 + [
        (True, "wrong patient")]
    # And each is what recording it answered (the void aside)
    for item in items[:4]:
        assert item == recorded[item["assessment_id"]]
    assert {**items[4], "voided": False, "void_reason": None} == recorded["jan-26"]
    assert items[0]["recorded_at"].endswith("+00:00")
    assert items[0]["recorded_by"] == SUB  # the default test token's sub


def test_items_and_the_reported_total_are_kept(api):
    episode_id = api.open()
    api.record(episode_id, "2026-01-05", items=[2, 2, 2, 2, 2, 2, 2, 2, None], total=18,
               assessment_id="with-items")
    (item,) = api.get(f"/episodes/{episode_id}/assessments")["items"]
    assert (item["items"], item["reported_total"], item["instrument"]) == (
        [2, 2, 2, 2, 2, 2, 2, 2, None], 18, "PHQ-9")


def test_an_episode_without_assessments_lists_none(api):
    episode_id = api.open()
    assert api.get(f"/episodes/{episode_id}/assessments") == {"episode_id": episode_id,
                                                              "items": []}


@pytest.mark.parametrize("episode_id", ["5b1f0c2e-8d4a-4c6e-9f3b-2a7d1e0c9b84", "not-a-uuid"])
def test_an_unknown_episode_is_404(client, episode_id):
    response = client.get(f"/episodes/{episode_id}/assessments")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_TYPE)
    assert response.json()["code"] == "episode-not-found"
