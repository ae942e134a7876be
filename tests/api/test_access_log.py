"""The access log over HTTP: every request leaves one record, in its own store, with ids only;
``GET /access-log`` filters, pages and shows each auditor only their clinics' records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import anyio
import pytest
from api_helpers import NOW, PATIENT_REF, PROBLEM_TYPE, store_settings
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from local_issuer import OTHER_KEY, bearer, mint
from starlette.middleware import Middleware

from api import create_app, problems
from api.access import AccessLogMiddleware
from bootstrap import Services, Settings, build


def token(sub: str, role: str, clinic: str) -> str:
    """A valid token of the local issuer for ``sub`` with one role and one clinic."""
    return mint(sub=sub, roles=[role], clinics=[clinic])


TOKENS = {"dr-lee": token("dr-lee", "clinician", "clinic-a"),
          "ada-audit": token("ada-audit", "auditor", "clinic-a"),
          "bo-audit": token("bo-audit", "auditor", "clinic-b"),
          "dr-kim": token("dr-kim", "clinician", "clinic-b"),
          "rae-research": token("rae-research", "researcher", "clinic-a")}
LEE, ADA, BO, KIM, RAE = (bearer(TOKENS[sub]) for sub in TOKENS)
# Well formed and claiming dr-lee, but signed with a key the issuer's JWKS lacks: it fails
# authentication, and no part of it may reach the access log.
FORGED = mint(key=OTHER_KEY, sub="dr-lee", roles=["clinician"], clinics=["clinic-a"])
AS_OF = "2026-02-20T08:15:00+00:00"


class TickingClock:
    """A clock that advances one second per call, from ``start``."""

    def __init__(self, start: datetime) -> None:
        self.now = start - timedelta(seconds=1)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def app_of(settings: Settings, services: Services) -> FastAPI:
    """The real app (bearer-token authentication against the local issuer) over ``services``."""
    return create_app(settings, services=services)


@contextmanager
def running(settings: Settings, clock: TickingClock) -> Iterator[tuple[TestClient, Services]]:
    """The app on ``settings`` with ``clock``, lifespan running; no default token (each request
    names its caller)."""
    services = build(settings, clock=clock)
    try:
        with TestClient(app_of(settings, services)) as client:
            yield client, services
    finally:
        services.close()


@pytest.fixture
def settings(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return store_settings(store, request, tmp_path)


@pytest.fixture
def started(settings: Settings) -> Iterator[tuple[TestClient, Services]]:
    with running(settings, TickingClock(NOW)) as pair:
        yield pair


@pytest.fixture
def client(started: tuple[TestClient, Services]) -> TestClient:
    return started[0]


@pytest.fixture
def services(started: tuple[TestClient, Services]) -> Services:
    return started[1]


def stored(services: Services) -> list[Any]:
    """The access log's events, decoded, in order."""
    recorder, mapper = services.access_log.recorder, services.access_log.mapper
    return [mapper.to_domain_event(n) for n in recorder.select_notifications(start=1, limit=10_000)]


def scenario(client: TestClient) -> tuple[str, list[str]]:
    """Open, record, read, a 404 (dr-kim of clinic-b asks for clinic-a's episode), a 403 (a
    clinician asks for the access log), a 401 (a forged token) and a 422; returns the episode id
    and the request ids the answers echoed."""
    answers = [client.post("/episodes", headers={**LEE, "X-Request-ID": "req-open-1"}, json={
        "patient_ref": PATIENT_REF, "clinic_id": "clinic-a", "opened_on": "2026-01-05"})]
    episode = answers[0].json()["episode_id"]
    answers.append(client.post(f"/episodes/{episode}/assessments", headers=LEE, json={
        "assessment_id": "phq-1", "instrument": "PHQ-9", "administered_on": "2026-01-05",
        "total": 18}))
    answers.append(client.get(f"/episodes/{episode}/stages", headers=LEE,
                              params={"as_of": AS_OF}))
    answers.append(client.get(f"/episodes/{episode}", headers=KIM))
    answers.append(client.get("/access-log", headers=LEE))
    answers.append(client.get(f"/episodes/{episode}", headers=bearer(FORGED)))
    answers.append(client.post(f"/episodes/{episode}/assessments", headers=LEE, json={
        "instrument": "PHQ-9", "administered_on": "2026-01-12", "items": [0, 1, 4, 0, 0, 0, 0, 0, 0]}))
    assert [a.status_code for a in answers] == [201, 201, 200, 404, 403, 401, 422]
    return episode, [a.headers["X-Request-ID"] for a in answers]


def test_a_scripted_scenario_leaves_exactly_the_expected_records_in_order(
        client: TestClient, services: Services) -> None:
    episode, request_ids = scenario(client)
    events = stored(services)
    # The clinic is the one a route stored (request.state.clinic_id: the body's clinic, the
    # episode's) or null: the access log's route names none, a failed authentication runs no
    # route. dr-kim's 404 for clinic-a's episode is recorded with the episode's clinic,
    # clinic-a (the route looked the episode up): clinic-a's auditors see it; clinic-b's see it
    # with no clinic, as a missing episode's (docs/access-log.md, "who sees what").
    lee = ("dr-lee", True, ["clinician"], ["clinic-a"])
    kim = ("dr-kim", True, ["clinician"], ["clinic-b"])
    expected = [
        (*lee, "clinic-a", "POST", "/episodes", episode, None, 201),
        (*lee, "clinic-a", "POST", "/episodes/{episode_id}/assessments", episode, "phq-1", 201),
        (*lee, "clinic-a", "GET", "/episodes/{episode_id}/stages", episode, None, 200),
        (*kim, "clinic-a", "GET", "/episodes/{episode_id}", episode, None, 404),
        (*lee, None, "GET", "/access-log", None, None, 403),
        ("anonymous", False, [], [], None, "GET", "/episodes/{episode_id}", episode, None, 401),
        (*lee, "clinic-a", "POST", "/episodes/{episode_id}/assessments", episode, None, 422),
    ]
    assert [(e.sub, e.authenticated, e.roles, e.clinics, e.clinic_id, e.method, e.route,
             e.episode_id, e.assessment_id, e.status) for e in events] == expected
    assert [e.request_id for e in events] == request_ids
    assert request_ids[0] == "req-open-1"
    assert [e.at.isoformat() for e in events] == [
        f"2027-12-31T00:00:{s:02d}+00:00" for s in (0, 2, 4, 5, 6, 7, 8)]  # clock: +1 s a call
    assert {e.client for e in events} == {"testclient"}
    assert all(e.run_id is None for e in events)


def test_no_patient_ref_body_token_or_query_value_is_stored(
        client: TestClient, services: Services) -> None:
    scenario(client)
    raw = b"".join(n.state + n.topic.encode() for n in
                   services.access_log.recorder.select_notifications(start=1, limit=10_000))
    assert len(raw) > 1000  # seven records were scanned
    tokens = [FORGED, TOKENS["dr-lee"], TOKENS["dr-kim"]]
    # A JWT's parts: the header, the claims, the signature; none of them, nor the whole token.
    parts = [part for t in tokens for part in t.split(".")]
    for secret in (PATIENT_REF, "Bearer", "patient_ref", "administered_on", "items", AS_OF,
                   "2026-02-20", "as_of", *tokens, *parts):
        assert secret.encode() not in raw, secret


def test_a_request_no_route_matches_is_recorded_unmatched(
        client: TestClient, services: Services) -> None:
    response = client.get("/no-such-route", headers=LEE)
    assert response.status_code == 404
    [record] = stored(services)
    # The authentication runs as a dependency of the matched route: no route, no principal.
    assert (record.route, record.method, record.status, record.sub, record.authenticated) == (
        "unmatched", "GET", 404, "anonymous", False)
    assert record.request_id == response.headers["X-Request-ID"]


class TooMany:
    """Test-only stand-in for a rate limiter: answers 429 before any route runs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (b"x-test-flood", b"1") in scope["headers"]:
            await problems.problem(429, "Too many requests", "slow down", "rate-limited",
                                   headers={"Retry-After": "1"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def inside_access_log(app: Any) -> int:
    """The index in ``app.user_middleware`` just inside the access-log middleware (outermost
    but for the database breaker, api.availability)."""
    return [m.cls for m in app.user_middleware].index(AccessLogMiddleware) + 1


def test_a_request_an_inner_middleware_rejects_is_recorded(settings: Settings) -> None:
    services = build(settings, clock=TickingClock(NOW))
    app = app_of(settings, services)
    app.user_middleware.insert(inside_access_log(app), Middleware(TooMany))
    try:
        with TestClient(app) as client:
            response = client.get("/clinics/clinic-a/outcomes", headers={**LEE, "X-Test-Flood": "1"})
        records = stored(services)  # before close: a closed PostgreSQL store reads nothing
    finally:
        services.close()
    assert response.status_code == 429
    [record] = records
    # Rejected before the authentication and the routing: anonymous, unmatched, its clinic
    # from the path is unknown too (no route matched), but the answer's request id is kept.
    assert (record.sub, record.route, record.status, record.clinic_id) == (
        "anonymous", "unmatched", 429, None)
    assert record.request_id == response.headers["X-Request-ID"]


def test_void_and_clinic_routes_record_their_ids(client: TestClient, services: Services) -> None:
    episode = client.post("/episodes", headers=LEE, json={
        "patient_ref": PATIENT_REF, "clinic_id": "clinic-a", "opened_on": "2026-01-05"}).json()
    client.post(f"/episodes/{episode['episode_id']}/assessments/phq-x/void", headers=LEE,
                json={"reason": "entered in error"})
    client.get("/clinics/clinic-a/outcomes", headers=RAE)
    client.get("/audit", headers=ADA, params={"clinic_id": "clinic-a", "recorded_by": "dr-lee"})
    client.get("/audit", headers=ADA, params={"clinic_id": "clinic\u202ea"})
    recorded = client.post(f"/episodes/{episode['episode_id']}/assessments", headers=LEE, json={
        "instrument": "PHQ-9", "administered_on": "2026-01-05", "total": 18})
    records = stored(services)
    assert [(r.sub, r.route, r.episode_id, r.assessment_id, r.clinic_id, r.status)
            for r in records] == [
        ("dr-lee", "/episodes", episode["episode_id"], None, "clinic-a", 201),
        ("dr-lee", "/episodes/{episode_id}/assessments/{assessment_id}/void",
         episode["episode_id"], "phq-x", "clinic-a", 404),
        ("rae-research", "/clinics/{clinic_id}/outcomes", None, None, "clinic-a", 200),
        ("ada-audit", "/audit", None, None, "clinic-a", 200),
        ("ada-audit", "/audit", None, None, None, 422),  # not an id: refused, and not kept
        # The id the service chose for an assessment sent without one, as the route stored it.
        ("dr-lee", "/episodes/{episode_id}/assessments", episode["episode_id"],
         recorded.json()["assessment_id"], "clinic-a", 201),
    ]


def test_the_clinic_a_route_stores_on_the_request_state_wins(settings: Settings) -> None:
    services = build(settings, clock=TickingClock(NOW))
    app = app_of(settings, services)

    def concerning_clinic_b(request: Request) -> dict[str, str]:
        request.state.clinic_id = "clinic-b"  # what a route does once it knows the episode's
        return {}
    app.add_api_route("/test-clinic", concerning_clinic_b)
    try:
        with TestClient(app) as client:
            assert client.get("/test-clinic", headers=LEE,
                              params={"clinic_id": "clinic-a"}).status_code == 200
        records = stored(services)
    finally:
        services.close()
    [record] = records
    assert (record.route, record.clinic_id) == ("/test-clinic", "clinic-b")


def test_a_failed_append_answers_500_and_not_the_answer(
        client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_: Any) -> int:
        raise OSError("disk full")
    monkeypatch.setattr(services.access_log, "record", fail)
    response = client.post("/episodes", headers=LEE, json={
        "patient_ref": PATIENT_REF, "clinic_id": "clinic-a", "opened_on": "2026-01-05"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.json()["code"] == "access-log-unavailable"
    assert "episode_id" not in response.text


def test_the_access_store_is_not_the_episodes_store(client: TestClient, services: Services) -> None:
    scenario(client)
    assert services.access_log.recorder is not services.app.recorder
    episode_topics = {n.topic for n in services.app.recorder.select_notifications(1, 10_000)}
    access_topics = {n.topic for n in services.access_log.recorder.select_notifications(1, 10_000)}
    assert access_topics == {"outcome-ledger:AccessRecord.Recorded"}
    assert episode_topics and not any("AccessRecord" in t for t in episode_topics)


def page(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get("/access-log", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_filters_and_pagination(client: TestClient) -> None:
    episode, _ = scenario(client)
    first = page(client, ADA, limit=3)
    assert [i["status"] for i in first["items"]] == [201, 201, 200]
    assert first["next"] is not None and "cursor=" in first["next"]
    second = client.get(first["next"], headers=ADA).json()
    third = client.get(second["next"], headers=ADA).json()
    assert [i["status"] for i in second["items"]] == [404, 403, 401]
    # Each page's own request is recorded once it is answered: the third page ends with the
    # auditor's first two.
    assert [(i["sub"], i["route"], i["status"]) for i in third["items"]] == [
        ("dr-lee", "/episodes/{episode_id}/assessments", 422),
        ("ada-audit", "/access-log", 200), ("ada-audit", "/access-log", 200)]
    assert third["next"] is None
    positions = [i["position"] for i in first["items"] + second["items"] + third["items"]]
    assert positions == list(range(1, 10))

    by_episode = page(client, ADA, episode_id=episode)
    assert [i["status"] for i in by_episode["items"]] == [201, 201, 200, 404, 401, 422]
    assert [i["sub"] for i in page(client, ADA, sub="anonymous")["items"]] == ["anonymous"]
    times = [i["at"] for i in page(client, ADA)["items"]]
    window = page(client, ADA, since=times[1], until=times[3])["items"]
    assert [i["at"] for i in window] == times[1:4]
    assert page(client, ADA, since="2030-01-01T00:00:00+00:00")["items"] == []


def test_each_auditor_sees_only_their_clinics_records(client: TestClient) -> None:
    client.get("/clinics/clinic-a/outcomes", headers=LEE)      # clinic-a (from the path)
    client.get("/clinics/clinic-b/outcomes", headers=KIM)      # clinic-b (from the path)
    client.get("/criteria", headers=LEE)                       # no clinic; a clinic-a user
    client.get("/criteria", headers=KIM)                       # no clinic; a clinic-b user
    client.get("/criteria")                                    # failed authentication
    seen_by_a = [(i["sub"], i["clinic_id"], i["route"]) for i in page(client, ADA)["items"]]
    assert seen_by_a == [("dr-lee", "clinic-a", "/clinics/{clinic_id}/outcomes"),
                         ("dr-lee", None, "/criteria"), ("anonymous", None, "/criteria")]
    seen_by_b = [(i["sub"], i["clinic_id"]) for i in page(client, BO)["items"]]
    # ada-audit's query (no clinic; a clinic-a user) is not bo-audit's to see.
    assert seen_by_b == [("dr-kim", "clinic-b"), ("dr-kim", None), ("anonymous", None)]
    assert page(client, ADA, clinic_id="clinic-b")["items"] == []


def test_a_404_for_another_clinics_episode_reads_like_a_missing_ones_to_the_callers_auditors(
        client: TestClient) -> None:
    episode = client.post("/episodes", headers=LEE, json={
        "patient_ref": PATIENT_REF, "clinic_id": "clinic-a", "opened_on": "2026-01-05"}).json()
    missing = str(uuid4())
    for episode_id in (episode["episode_id"], missing):
        assert client.get(f"/episodes/{episode_id}", headers=BO).status_code == 404
    # bo-audit (clinic-b) sees both of their own 404s alike, no clinic: were clinic-a's episode
    # recorded with its clinic and hidden, the missing one's (no clinic, shown) would tell them
    # apart, an existence oracle.
    seen_by_b = [(i["sub"], i["clinic_id"], i["route"], i["episode_id"], i["status"])
                 for i in page(client, BO)["items"]]
    assert seen_by_b == [("bo-audit", None, "/episodes/{episode_id}", episode["episode_id"], 404),
                         ("bo-audit", None, "/episodes/{episode_id}", missing, 404)]
    # clinic-a's auditor sees the probe of their episode, with its clinic; not the missing one.
    seen_by_a = [(i["sub"], i["clinic_id"], i["episode_id"], i["status"])
                 for i in page(client, ADA, sub="bo-audit")["items"]]
    assert seen_by_a == [("bo-audit", "clinic-a", episode["episode_id"], 404)]
    assert [i["sub"] for i in page(client, ADA, clinic_id="clinic-a")["items"]] == [
        "dr-lee", "bo-audit"]
    assert page(client, BO, clinic_id="clinic-a")["items"] == []  # not filtered on a hidden one


def test_the_route_needs_the_auditor_role_and_valid_filters(client: TestClient) -> None:
    denied = client.get("/access-log", headers=LEE)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == PROBLEM_TYPE
    assert "auditor" in denied.json()["detail"]
    bad = client.get("/access-log", headers=ADA, params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_TYPE
    for headers in ({}, bearer(FORGED)):  # no token, a token that fails authentication
        unauthenticated = client.get("/access-log", headers=headers)
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.sqlite_only  # reads the SQLite files' bytes
def test_records_survive_a_restart_and_only_ids_reach_the_file(settings: Settings) -> None:
    with running(settings, TickingClock(NOW)) as (client, _):
        episode, request_ids = scenario(client)
    folder = settings.sqlite_path.parent
    raw = b"".join(p.read_bytes() for p in folder.glob("access-log.sqlite*"))
    assert b"AccessRecord.Recorded" in raw
    for secret in (PATIENT_REF, *FORGED.split("."), *TOKENS["dr-lee"].split("."),
                   "administered_on", AS_OF):
        assert secret.encode() not in raw, secret
    episodes_raw = b"".join(p.read_bytes() for p in folder.glob("outcomes.sqlite*"))
    assert b"AccessRecord" not in episodes_raw and b"Episode.Opened" in episodes_raw
    with running(settings, TickingClock(NOW)) as (client, _):
        items = page(client, ADA)["items"]
    assert [i["request_id"] for i in items] == request_ids
    assert items[0]["episode_id"] == episode


def test_the_record_is_stored_before_the_answer_starts(settings: Settings) -> None:
    services = build(settings, clock=TickingClock(NOW))
    app = app_of(settings, services)
    stored_when_answered: list[int] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/criteria", "raw_path": b"/criteria", "root_path": "",
             "query_string": b"", "headers": [(b"host", b"testserver"),
                                             (b"authorization", LEE["Authorization"].encode())],
             "client": ("10.1.2.3", 50000), "server": ("testserver", 80), "state": {}}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            stored_when_answered.append(services.access_log.recorder.max_notification_id() or 0)
    try:
        anyio.run(app, scope, receive, send)
        records = stored(services)
    finally:
        services.close()
    assert stored_when_answered == [1]
    [record] = records
    assert (record.route, record.status, record.client) == ("/criteria", 200, "10.1.2.3")


def test_the_answers_match_the_openapi_document(client: TestClient) -> None:
    scenario(client)
    document = client.get("/openapi.json", headers=ADA).json()
    responses = document["paths"]["/access-log"]["get"]["responses"]
    for headers, params, status in ((ADA, {"limit": 2}, 200), (LEE, {}, 403),
                                    (ADA, {"until": "1 May"}, 422)):
        response = client.get("/access-log", headers=headers, params=params)
        assert response.status_code == status
        media = response.headers["content-type"].split(";")[0]
        schema = {**responses[str(status)]["content"][media]["schema"],
                  "components": document["components"]}
        assert list(Draft202012Validator(schema).iter_errors(response.json())) == []


class Broken:
    """Test-only middleware that fails without answering (as a faulty one could)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise RuntimeError("boom")
        await self.app(scope, receive, send)


def test_a_request_that_fails_unanswered_is_recorded_as_500(settings: Settings) -> None:
    services = build(settings, clock=TickingClock(NOW))
    app = app_of(settings, services)
    app.user_middleware.insert(inside_access_log(app), Middleware(Broken))
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/criteria", headers=LEE).status_code == 500
        records = stored(services)
    finally:
        services.close()
    [record] = records
    assert (record.status, record.route, record.sub) == (500, "unmatched", "anonymous")


def test_a_nested_lookup_leaks_no_existence_through_the_clinic_recorded(client: TestClient) -> None:
    # A researcher-auditor of clinic-b asks its own run for clinic-a's episode and for a missing
    # one: the run names clinic-b first; neither 404 may leave a record that tells them apart.
    caller = bearer(mint(sub="sam-b", roles=["researcher", "auditor"], clinics=["clinic-b"]))
    foreign = client.post("/episodes", headers=LEE, json={
        "patient_ref": PATIENT_REF, "clinic_id": "clinic-a", "opened_on": "2026-01-05"}).json()
    run = client.post("/rescorings", headers=caller,
                      json={"criteria": "frank1991", "clinic_id": "clinic-b"}).json()["run_id"]
    for episode_id in (foreign["episode_id"], str(uuid4())):
        answer = client.get(f"/rescorings/{run}/episodes/{episode_id}", headers=caller)
        assert answer.status_code == 404
    probes = [(i["clinic_id"], i["status"]) for i in page(client, caller, sub="sam-b")["items"]
              if i["route"] == "/rescorings/{run_id}/episodes/{episode_id}"]
    assert probes == [(None, 404), (None, 404)]
