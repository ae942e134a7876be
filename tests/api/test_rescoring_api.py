"""Re-scoring over HTTP (issue 5): shadow runs (POST/GET /rescorings...), adoption of other
criteria (POST /episodes/{id}/criteria, POST /clinics/{id}/criteria) and custom criteria sets
(POST/GET /criteria), on a throwaway SQLite store with the clock stopped at 2027-12-31 UTC."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from api_helpers import PROBLEM_TYPE, V1, Api, memory_settings, running
from local_issuer import bearer

from domain.criteria.builtin import BUILTIN, get_criteria
from domain.criteria.fold import Observation, fold

LEAD = bearer(sub="lead-7")
V2 = [("2026-01-05", 18), ("2026-01-19", 12), ("2026-02-02", 9), ("2026-02-16", 9),
      ("2026-03-02", 11)]
V8 = [("2026-01-05", 8), ("2026-01-19", 6), ("2026-02-02", 4), ("2026-02-16", 3),
      ("2026-03-02", 3), ("2026-03-16", 3)]
CUSTOM = {"base": "frank1991", "id": "clinic-a-recovery-26w",
          "params": {"recovery_min_days_from_full_onset": 182},
          "source": "Clinic A outcomes policy 2026, section 3"}


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["date"], e.get("degree"), e.get("onset")) for e in events]


def folded(rows: list[tuple[str, int]], criteria: str) -> list[tuple[Any, ...]]:
    """The pure fold's decisions on total-only PHQ-9 rows, as (type, date, degree, onset)."""
    obs = [Observation(f"r{i}", "PHQ-9", date.fromisoformat(d), None, t)
           for i, (d, t) in enumerate(rows)]
    return shape([e.as_dict() for e in fold(obs, get_criteria(criteria)).events])


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_TYPE)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code
    return body


def given_episodes(api: Api) -> dict[str, str]:
    """V1 and V2 under frank1991, V8 under acnp2006, all in clinic-a."""
    episodes = {"V1": api.open(criteria="frank1991"), "V2": api.open(criteria="frank1991"),
                "V8": api.open(criteria="acnp2006")}
    for name, rows in (("V1", V1), ("V2", V2), ("V8", V8)):
        api.record_all(episodes[name], rows)
    return episodes


def start(api: Api, **body: Any) -> dict[str, Any]:
    """POST /rescorings (of clinic-a unless ``clinic_id`` is given) as lead-7; asserts 202."""
    response = api.client.post("/rescorings", json={"clinic_id": "clinic-a", **body},
                               headers=LEAD)
    assert response.status_code == 202, response.text
    started: dict[str, Any] = response.json()
    assert response.headers["Location"].endswith(f"/rescorings/{started['run_id']}")
    return started


def finished(api: Api, run_id: str) -> dict[str, Any]:
    """Poll GET /rescorings/{id} until the run is done (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        run: dict[str, Any] = api.get(f"/rescorings/{run_id}")
        if run["status"] in ("completed", "interrupted"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


# -- shadow runs --------------------------------------------------------------------------------

def test_a_shadow_run_reports_figures_now_and_new_and_changes_nothing(api: Api) -> None:
    episodes = given_episodes(api)
    position = api.position()
    acnp = get_criteria("acnp2006").ref()
    # When a shadow run under acnp2006 is requested
    started = start(api, criteria="acnp2006")
    assert started["status"] == "requested" and started["criteria"] == acnp
    assert started["clinic_id"] == "clinic-a" and started["as_of"].startswith("2027-12-31")
    run = finished(api, started["run_id"])
    # Then it completes with the criteria, counts and both sets of figures
    assert run["status"] == "completed"
    assert run["criteria"] == acnp
    assert run["requested_by"] == "lead-7"
    assert (run["episodes"], run["processed"], run["total"], run["progress"]) == (3, 3, 3, 100.0)
    assert run["changed"] >= 1
    for side in ("now", "new"):
        figures = run["figures"][side]
        assert figures["episodes"] == 3
        assert figures["evaluable"] == 2  # V8's baseline is below the threshold
        assert set(figures["rates"]) == {"response", "partial_remission", "remission",
                                         "recovery", "relapse", "recurrence"}
    assert run["figures"]["now"]["rates"]["recovery"] == 50.0  # V1 recovers under frank1991
    # ... one episode's would-be history is the acnp2006 fold of its rows
    v1 = api.get(f"/rescorings/{started['run_id']}/episodes/{episodes['V1']}")
    assert shape(v1["new"]) == folded(V1, "acnp2006")
    assert shape(v1["now"]) == shape(api.get(f"/episodes/{episodes['V1']}/stages")["events"])
    assert v1["criteria_hash"] == acnp["hash"]
    assert v1["criteria_now"] == get_criteria("frank1991").ref()
    assert (v1["stage_now"], v1["stage_new"]) == ("recovery", "recovery")
    # ... and the episodes' store is exactly as it was
    assert api.position() == position


def test_changes_are_paginated_with_next(api: Api) -> None:
    episodes = given_episodes(api)
    run_id = start(api, criteria="acnp2006")["run_id"]
    run = finished(api, run_id)
    page = api.get(f"/rescorings/{run_id}/changes", limit=1)
    items = list(page["items"])
    while page["next"]:
        assert len(page["items"]) == 1
        page = api.client.get(page["next"]).json()
        items += page["items"]
    assert len(items) == run["changed"] == len({i["episode_id"] for i in items})
    assert {i["episode_id"] for i in items} <= set(episodes.values())
    assert episodes["V8"] not in {i["episode_id"] for i in items}  # acnp2006 already
    for item in items:
        assert set(item) >= {"stage_now", "stage_new", "criteria_now", "added", "removed",
                             "moved"}
        assert item["added"] or item["removed"] or item["moved"] or \
            item["stage_now"] != item["stage_new"]


def test_a_run_for_one_clinic_as_of_a_moment(api: Api) -> None:
    episodes = given_episodes(api)
    episodes["V8-b"] = api.open(criteria="acnp2006", clinic_id="clinic-b")
    api.record_all(episodes["V8-b"], V8)
    started = start(api, criteria="frank1991-rec26w", clinic_id="clinic-b",
                    as_of="2027-12-31T00:00:00+00:00")
    run = finished(api, started["run_id"])
    assert (run["clinic_id"], run["episodes"]) == ("clinic-b", 1)
    assert run["as_of"] == "2027-12-31T00:00:00+00:00"
    api.get(f"/rescorings/{started['run_id']}/episodes/{episodes['V8-b']}")
    response = api.client.get(f"/rescorings/{started['run_id']}/episodes/{episodes['V1']}")
    assert_problem(response, 404, "rescoring-not-found")


def test_a_run_as_of_before_an_assessment_does_not_see_it(api: Api) -> None:
    episode_id = api.open(criteria="frank1991")
    api.record_all(episode_id, V1[:5])
    moment = api.get(f"/episodes/{episode_id}/audit")["items"][-1]["recorded_at"]
    time.sleep(0.01)
    api.record_all(episode_id, V1[5:])
    run_id = start(api, criteria="acnp2006", as_of=moment)["run_id"]
    finished(api, run_id)
    result = api.get(f"/rescorings/{run_id}/episodes/{episode_id}")
    assert shape(result["new"]) == folded(V1[:5], "acnp2006")


def test_unknown_runs_are_404_problems(api: Api) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for url in (f"/rescorings/{unknown}", f"/rescorings/{unknown}/changes",
                f"/rescorings/{unknown}/episodes/{unknown}", "/rescorings/not-a-uuid"):
        assert_problem(api.client.get(url), 404, "rescoring-not-found")


def test_a_run_under_unknown_criteria_is_a_422_and_nothing_is_recorded(api: Api) -> None:
    given_episodes(api)
    runs = api.client.app.state.services.runs  # type: ignore[attr-defined]
    recorded = runs.recorder.max_notification_id()
    position = api.position()
    assert_problem(api.client.post("/rescorings", json={"criteria": "beck1961", "clinic_id": "c"}), 422,
                   "unknown-criteria")
    assert_problem(api.client.post("/rescorings", json={"criteria": "acnp2006", "clinic_id": "c",
                                                         "params": {"bogus": 1}}),
                   422, "invalid-criteria-parameter")
    assert_problem(api.client.post("/rescorings", json={"criteria": "acnp2006",
                                                         "as_of": "2027-01-01T00:00:00"}),
                   422, "validation-error")  # no UTC offset
    assert runs.recorder.max_notification_id() == recorded
    assert api.position() == position


# -- adoption -----------------------------------------------------------------------------------

def test_adopting_criteria_for_an_episode_appends_and_as_of_shows_the_old_history(api: Api) -> None:
    # Given V1 under frank1991
    episode_id = api.open(criteria="frank1991")
    api.record_all(episode_id, V1)
    frank, acnp = get_criteria("frank1991").ref(), get_criteria("acnp2006").ref()
    old = api.get(f"/episodes/{episode_id}/stages")
    assert old["criteria"] == frank
    before = api.get(f"/episodes/{episode_id}/audit", limit=500)["items"][-1]["recorded_at"]
    version = api.get(f"/episodes/{episode_id}")["version"]
    time.sleep(0.01)
    # When the clinic adopts acnp2006 for it (with the current version in If-Match)
    response = api.client.post(f"/episodes/{episode_id}/criteria", headers={
        **LEAD, "If-Match": f'"{version}"'}, json={"criteria": "acnp2006", "reason": "policy"})
    # Then the answer lists the retractions and the new decisions, each citing the adoption
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["ETag"] == f'"{body["version"]}"'
    assert body["retracted"] and body["stage_events"]
    causes = {e["caused_by"] for e in body["retracted"] + body["stage_events"]}
    assert len(causes) == 1 and causes.pop().startswith("adoption:")
    retracted = {(e["retracted_type"], e["date"]) for e in body["retracted"]}
    assert retracted == {(t, d) for t, d, *_ in set(folded(V1, "frank1991")) -
                         set(folded(V1, "acnp2006"))}
    assert set(shape(body["stage_events"])) == set(folded(V1, "acnp2006")) - \
        set(folded(V1, "frank1991"))
    # ... the history is now acnp2006's; as of before the adoption it is still frank1991's
    now = api.get(f"/episodes/{episode_id}/stages")
    assert now["criteria"] == acnp
    assert shape(now["events"]) == folded(V1, "acnp2006")
    then = api.get(f"/episodes/{episode_id}/stages", as_of=before)
    assert then["criteria"] == frank
    assert shape(then["events"]) == shape(old["events"]) == folded(V1, "frank1991")
    # ... and the audit trail holds the old decisions, the adoption and the new ones
    trail = api.get(f"/episodes/{episode_id}/audit", limit=500)["items"]
    types = [item["type"] for item in trail]
    adopted_at = types.index("CriteriaAdopted")
    assert "StageRetracted" in types[adopted_at:]
    assert "RecoveryConfirmed" in types[:adopted_at]  # frank1991's, now retracted, still there
    assert {e["stage_id"] for e in body["stage_events"]} <= \
        {item["data"].get("stage_id") for item in trail[adopted_at:]}
    # A stale If-Match is a conflict, and adopting the set in force again changes nothing
    stale = api.client.post(f"/episodes/{episode_id}/criteria", headers={"If-Match": '"1"'},
                            json={"criteria": "frank1991", "reason": "policy"})
    assert_problem(stale, 409, "version-conflict")
    position = api.position()
    again = api.client.post(f"/episodes/{episode_id}/criteria",
                            json={"criteria": "acnp2006", "reason": "policy"})
    assert again.status_code == 200
    assert (again.json()["retracted"], again.json()["stage_events"]) == ([], [])
    assert api.position() == position


def test_adoption_problems(api: Api) -> None:
    episode_id = api.open(criteria="frank1991")
    api.record_all(episode_id, V2)
    url = f"/episodes/{episode_id}/criteria"
    position = api.position()
    assert_problem(api.client.post(url, json={"criteria": "beck1961", "reason": "x"}), 422,
                   "unknown-criteria")
    assert_problem(api.client.post(url, json={"criteria": "acnp2006", "reason": ""}), 422,
                   "validation-error")
    assert_problem(api.client.post(url, json={"criteria": "acnp2006", "reason": "  "}), 422,
                   "invalid-input")
    assert_problem(api.client.post("/episodes/00000000-0000-4000-8000-000000000000/criteria",
                                   json={"criteria": "acnp2006", "reason": "x"}), 404,
                   "episode-not-found")
    assert api.client.post(f"/episodes/{episode_id}/close",
                           json={"discharged_on": "2026-03-02"}).status_code == 200
    position = api.position()
    assert_problem(api.client.post(url, json={"criteria": "acnp2006", "reason": "x"}), 409,
                   "episode-closed")
    assert api.position() == position


def test_adopting_for_a_clinic_skips_closed_episodes_and_other_clinics(api: Api) -> None:
    first, second, closed = (api.open(criteria="frank1991") for _ in range(3))
    other = api.open(criteria="frank1991", clinic_id="clinic-b")
    for episode_id in (first, second, closed, other):
        api.record_all(episode_id, V2)
    assert api.client.post(f"/episodes/{closed}/close",
                           json={"discharged_on": "2026-03-02"}).status_code == 200
    response = api.client.post("/clinics/clinic-a/criteria", headers=LEAD,
                               json={"criteria": "acnp2006", "reason": "clinic policy 2027"})
    assert response.status_code == 200, response.text
    position = api.get("/health")["position"]
    assert response.json() == {"clinic_id": "clinic-a", "adopted": [first, second],
                               "unchanged": [], "skipped": [], "position": position}
    assert response.headers["X-Ledger-Position"] == str(position)
    acnp, frank = get_criteria("acnp2006").ref(), get_criteria("frank1991").ref()
    for episode_id, criteria in ((first, acnp), (second, acnp), (closed, frank), (other, frank)):
        assert api.get(f"/episodes/{episode_id}/stages")["criteria"] == criteria
    assert shape(api.get(f"/episodes/{first}/stages")["events"]) == folded(V2, "acnp2006")
    again = api.client.post("/clinics/clinic-a/criteria",
                            json={"criteria": "acnp2006", "reason": "clinic policy 2027"})
    assert again.json() == {"clinic_id": "clinic-a", "adopted": [], "unchanged": [first, second],
                            "skipped": [], "position": position}  # nothing new stored
    assert_problem(api.client.post("/clinics/clinic-a/criteria",
                                   json={"criteria": "beck1961", "reason": "x"}),
                   422, "unknown-criteria")


def test_adopting_for_a_clinic_skips_episodes_the_set_cannot_stage(api: Api) -> None:
    # Given a HAM-D17 episode between two PHQ-9 ones (the symptom rule needs PHQ-9 items)
    first = api.open(criteria="frank1991")
    hamd = api.open(criteria="frank1991", instrument="HAM-D17")
    last = api.open(criteria="frank1991")
    api.record(hamd, "2026-01-05", 24, instrument="HAM-D17")
    # When the clinic adopts acnp2006-symptom
    response = api.client.post("/clinics/clinic-a/criteria",
                               json={"criteria": "acnp2006-symptom", "reason": "policy"})
    # Then every episode it can stage adopts it, and the other is reported, unchanged
    assert response.status_code == 200, response.text
    assert response.json() == {"clinic_id": "clinic-a", "adopted": [first, last], "unchanged": [],
                               "skipped": [{"episode_id": hamd, "code": "unstageable-instrument"}],
                               "position": api.get("/health")["position"]}
    assert api.get(f"/episodes/{hamd}/stages")["criteria"]["id"] == "frank1991"
    assert api.get(f"/episodes/{last}/stages")["criteria"]["id"] == "acnp2006-symptom"


# -- custom criteria sets -----------------------------------------------------------------------

def test_registering_a_custom_set_and_its_versions(api: Api) -> None:
    expected_hash = BUILTIN["frank1991"].with_params(CUSTOM["params"]).hash
    # Registered: 201, version 1.0.0, identified by its content hash
    created = api.client.post("/criteria", json=CUSTOM, headers=LEAD)
    assert created.status_code == 201, created.text
    assert created.headers["Location"].endswith("/criteria/clinic-a-recovery-26w")
    assert (created.json()["id"], created.json()["version"], created.json()["hash"]) == \
        ("clinic-a-recovery-26w", "1.0.0", expected_hash)
    # The same definition again: 200, nothing new
    same = api.client.post("/criteria", json=CUSTOM)
    assert same.status_code == 200 and same.json() == created.json()
    # A changed definition: a new version
    changed = api.client.post("/criteria", json={**CUSTOM, "params": {
        "recovery_min_days_from_full_onset": 120}}, headers=bearer(sub="lead-9"))
    assert changed.status_code == 201
    assert changed.json()["version"] == "2.0.0" and changed.json()["hash"] != expected_hash
    # GET /criteria lists the built-ins and the latest custom version
    listed = {c["id"]: c for c in api.get("/criteria")["items"]}
    assert set(BUILTIN) < set(listed)
    assert listed["clinic-a-recovery-26w"]["version"] == "2.0.0"
    # GET /criteria/{id} shows every version, who registered it and when
    detail = api.get("/criteria/clinic-a-recovery-26w")
    assert detail["id"] == "clinic-a-recovery-26w"
    assert [v["definition"]["version"] for v in detail["versions"]] == ["1.0.0", "2.0.0"]
    assert [v["recorded_by"] for v in detail["versions"]] == ["lead-7", "lead-9"]
    assert all(v["recorded_at"] and v["base"] == "frank1991" for v in detail["versions"])
    assert detail["versions"][0]["definition"]["hash"] == expected_hash
    # A built-in has one version
    assert [v["definition"]["hash"] for v in api.get("/criteria/acnp2006")["versions"]] == \
        [BUILTIN["acnp2006"].hash]


def test_an_episode_under_a_custom_set_and_a_shadow_run_under_one(api: Api) -> None:
    assert api.client.post("/criteria", json=CUSTOM).status_code == 201
    custom = api.get("/criteria/clinic-a-recovery-26w")["versions"][-1]["definition"]
    episode_id = api.open(criteria="clinic-a-recovery-26w")
    api.record_all(episode_id, V1)
    history = api.get(f"/episodes/{episode_id}/stages")
    assert history["criteria"] == {k: custom[k] for k in ("id", "version", "hash")}
    assert shape(history["events"]) == folded(V1, "frank1991-rec26w")  # the same rules
    run = finished(api, start(api, criteria="clinic-a-recovery-26w")["run_id"])
    assert run["criteria"]["hash"] == custom["hash"] and run["changed"] == 0


def test_invalid_custom_sets_are_422(api: Api) -> None:
    cases = [({"params": {"bogus": 1}}, "invalid-criteria-parameter"),
             ({"params": {"recovery_min_days_from_full_onset": 99999}},
              "invalid-criteria-parameter"),
             ({"base": "beck1961"}, "unknown-criteria"),
             ({"id": "acnp2006"}, "invalid-input"),
             ({"source": ""}, "validation-error")]
    for change, code in cases:
        assert_problem(api.client.post("/criteria", json={**CUSTOM, **change}), 422, code)
    assert [c["id"] for c in api.get("/criteria")["items"]] == list(BUILTIN)


def test_an_unknown_criteria_set_is_404(api: Api) -> None:
    assert_problem(api.client.get("/criteria/clinic-z-unknown"), 404, "criteria-not-found")


def test_a_run_whose_thread_fails_is_marked_failed(monkeypatch):
    from application.rescoring import ShadowRuns

    def broken(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(ShadowRuns, "execute", broken)
    with running(memory_settings()) as client:
        started = client.post("/rescorings", json={"criteria": "acnp2006",
                                                   "clinic_id": "clinic-a"})
        assert started.status_code == 202
        run_url = f"/rescorings/{started.json()['run_id']}"
        for _ in range(100):
            status = client.get(run_url).json()["status"]
            if status == "failed":
                break
            time.sleep(0.05)
        assert status == "failed"


def test_an_admin_registers_and_revises_only_their_clinics_sets(api: Api) -> None:
    admin_a = bearer(sub="admin-a", roles=["admin"], clinics=["clinic-a"])
    admin_b = bearer(sub="admin-b", roles=["admin"], clinics=["clinic-b"])
    assert api.client.post("/criteria", json=CUSTOM, headers=admin_a).status_code == 201
    revised = {**CUSTOM, "params": {"recovery_min_days_from_full_onset": 7}}
    refused = api.client.post("/criteria", json=revised, headers=admin_b)
    assert_problem(refused, 403, "forbidden")
    assert refused.json()["field"] == "id"
    versions = api.get(f"/criteria/{CUSTOM['id']}")["versions"]
    assert [(v["definition"]["version"], v["recorded_by"]) for v in versions] == [
        ("1.0.0", "admin-a")]
    assert api.client.post("/criteria", json={**CUSTOM, "id": "clinic-b-26w"},
                           headers=admin_b).status_code == 201
