"""The /ui/ pages over HTTP (no browser): the development sign-in (loopback only, CSRF on every
form, the session cookie's flags), the API's bearer token accepted instead, roles and clinic
isolation as in the API, and the caseload page's rows in the caseload read model's order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from local_issuer import auth_settings, bearer

from api import create_app
from api.auth import DevIssuer, dev_key_path
from api.ui.sign_in import DEV_USERS
from bootstrap import Settings, build

NOW = datetime(2027, 12, 31, tzinfo=UTC)
LOOPBACK = ("127.0.0.1", 50000)
NORTH = "/ui/clinics/clinic-north/caseload"
ITEM9 = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # PHQ-9 17, item 9 answered 1: a safety alert


def dev_settings(folder: Path, **overrides: object) -> Settings:
    """Development mode (no issuer) on the in-memory store; the dev key in ``folder``."""
    return Settings(**{"persistence": "memory", "sqlite_path": folder / "outcomes.sqlite",
                       "allowed_hosts": "testserver", "rate_limit": "off", **overrides})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return dev_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    services = build(settings, clock=lambda: NOW)
    try:
        with TestClient(create_app(settings, services=services), client=LOOPBACK) as test_client:
            yield test_client
    finally:
        services.close()


def token(settings: Settings, sub: str = "dr-lee", roles: tuple[str, ...] = ("clinician",),
          clinics: tuple[str, ...] = ("clinic-north",)) -> str:
    return DevIssuer(dev_key_path(settings)).mint(sub=sub, roles=roles, clinics=clinics, ttl=600)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found[1]


def sign_in(client: TestClient, user: str = "dr-lee") -> None:
    form = client.get("/ui/sign-in")
    reply = client.post("/ui/sign-in", data={"csrf": csrf_of(form.text), "user": user},
                        follow_redirects=False)
    assert reply.status_code == 303, reply.text


def test_the_sign_in_page_lists_the_dev_users_and_one_click_reaches_the_caseload(client):
    page = client.get("/ui/sign-in")
    assert page.status_code == 200
    for user in DEV_USERS:
        assert f"Sign in as {user.sub}</button>" in page.text and user.about in page.text

    reply = client.post("/ui/sign-in", data={"csrf": csrf_of(page.text), "user": "dr-lee"},
                        follow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (303, NORTH)
    caseload = client.get(NORTH)
    assert caseload.status_code == 200
    assert "Signed in as <strong>dr-lee</strong> (clinician)" in caseload.text


def test_the_session_cookie_is_httponly_samesite_lax_and_not_secure_on_loopback(client):
    reply = client.post("/ui/sign-in", data={"csrf": csrf_of(client.get("/ui/sign-in").text),
                                             "user": "dr-lee"}, follow_redirects=False)
    cookie = reply.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and "secure" not in flags
    assert "samesite=lax" in cookie.lower() and "path=/ui" in cookie.lower()


def test_a_page_without_a_session_or_token_leads_to_the_sign_in(client):
    reply = client.get(NORTH, follow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (303, "/ui/sign-in")


@pytest.mark.parametrize("csrf", [None, "", "forged"])
def test_a_sign_in_without_the_sessions_csrf_token_is_refused(client, csrf):
    client.get("/ui/sign-in")  # the session holds a token; the form does not send it
    data = {"user": "dr-lee"} | ({} if csrf is None else {"csrf": csrf})
    reply = client.post("/ui/sign-in", data=data, follow_redirects=False)
    assert reply.status_code == 400 and "<h1>Bad request</h1>" in reply.text
    assert client.get(NORTH, follow_redirects=False).status_code == 303  # not signed in


def test_sign_out_needs_the_csrf_token_and_ends_the_session(client):
    sign_in(client)
    assert client.post("/ui/sign-out", data={}, follow_redirects=False).status_code == 400
    page = client.get(NORTH)
    assert page.status_code == 200
    reply = client.post("/ui/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (303, "/ui/sign-in")
    assert client.get(NORTH, follow_redirects=False).status_code == 303


def test_the_dev_sign_in_answers_loopback_clients_only(settings):
    services = build(settings, clock=lambda: NOW)
    try:
        with TestClient(create_app(settings, services=services),
                        client=("192.0.2.7", 50000)) as remote:
            assert remote.get("/ui/sign-in").status_code == 404
            assert remote.post("/ui/sign-in", data={"user": "dr-lee"}).status_code == 404
    finally:
        services.close()


def test_with_an_issuer_there_is_no_dev_sign_in_but_bearer_tokens_work(tmp_path):
    settings = dev_settings(tmp_path, **auth_settings())
    services = build(settings, clock=lambda: NOW)
    try:
        with TestClient(create_app(settings, services=services), client=LOOPBACK) as prod:
            assert prod.get("/ui/sign-in").status_code == 404
            assert prod.get("/ui/clinics/clinic-a/caseload").status_code == 401
            reply = prod.get("/ui/clinics/clinic-a/caseload", headers=bearer())
            assert reply.status_code == 200 and "Caseload of clinic-a" in reply.text
            assert "set-cookie" not in reply.headers
    finally:
        services.close()


def test_pages_accept_the_apis_bearer_token(client, settings):
    reply = client.get(NORTH, headers={"Authorization": f"Bearer {token(settings)}"})
    assert reply.status_code == 200 and "Signed in as <strong>dr-lee</strong>" in reply.text
    assert "Sign out" not in reply.text  # no session to end
    bad = client.get(NORTH, headers={"Authorization": "Bearer not-a-jwt"}, follow_redirects=False)
    assert bad.status_code == 401 and "malformed" in bad.text


def test_another_clinics_caseload_is_404_and_a_role_without_access_403(client, settings):
    sign_in(client, "dr-ruiz")  # clinic-south
    assert client.get(NORTH).status_code == 404
    assert client.get("/ui/clinics/clinic-south/caseload").status_code == 200
    researcher = {"Authorization": f"Bearer {token(settings, 'res-park', ('researcher',))}"}
    reply = client.get(NORTH, headers=researcher)
    assert reply.status_code == 403 and "needs the role clinician or auditor" in reply.text


@pytest.fixture
def episodes(client: TestClient, settings: Settings) -> dict[str, str]:
    """Four open episodes of clinic-north, opened in this order: one with nothing to do, one
    flagged overdue, one off track at week 4, one with a safety alert."""
    headers = {"Authorization": f"Bearer {token(settings)}"}
    ids = {}
    for ref in ("p-calm", "p-overdue", "p-off", "p-safety"):
        opened = client.post("/episodes", headers=headers, json={
            "patient_ref": ref, "clinic_id": "clinic-north", "opened_on": "2026-01-05"})
        assert opened.status_code == 201, opened.text
        ids[ref] = opened.json()["episode_id"]

    def record(ref: str, on: str, **body: object) -> None:
        reply = client.post(f"/episodes/{ids[ref]}/assessments", headers=headers,
                            json={"instrument": "PHQ-9", "administered_on": on, **body})
        assert reply.status_code == 201, reply.text

    record("p-calm", "2027-12-20", total=12)
    record("p-overdue", "2026-01-12", total=14)
    record("p-off", "2026-01-05", total=20)
    record("p-off", "2026-02-02", total=20)
    record("p-safety", "2026-01-19", items=ITEM9)
    client.app.state.services.app.flag_overdue(UUID(ids["p-overdue"]), today=date(2027, 12, 31),
                                               recorded_by="sweeper")
    return ids


def rows(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/ui/episodes/[0-9a-f-]{36}">([^<]+)</a></th>', html)


def test_the_caseload_lists_safety_then_off_track_then_overdue_then_the_rest(client, episodes):
    sign_in(client)
    page = client.get(NORTH)
    assert page.status_code == 200
    assert rows(page.text) == ["p-safety", "p-off", "p-overdue", "p-calm"]
    body = page.text.split("<tbody>")[1]
    for label in ("Safety alert", "Off track", "Overdue", "No alert", "Not on track"):
        assert f"{label}</span>" in body  # badges say what they mean, not colour alone
    assert '<time datetime="2026-01-19">2026-01-19</time>' in body  # latest score's date
    assert "<caption>" in page.text and '<label for="f-kind">' in page.text


def test_the_caseload_filters_are_the_read_models(client, episodes):
    sign_in(client)
    assert rows(client.get(NORTH, params={"kind": "off_track", "stage": "", "on_track": "",
                                          "instrument": ""}).text) == ["p-off"]
    assert rows(client.get(NORTH, params={"kind": "overdue"}).text) == ["p-overdue"]
    assert rows(client.get(NORTH, params={"instrument": "QIDS-SR16"}).text) == []
    assert client.get(NORTH, params={"kind": "bogus"}).status_code == 422


@pytest.mark.parametrize(("user", "landing"), [
    ("dr-lee", "/ui/clinics/clinic-north/caseload"),
    ("auditor-ng", "/ui/clinics/clinic-north/caseload"),
    ("res-park", "/ui/clinics/clinic-north/outcomes"),  # a researcher has no caseload (403)
    ("dr-ruiz", "/ui/clinics/clinic-south/caseload")])
def test_one_click_lands_each_dev_user_on_a_page_their_role_may_read(client, user, landing):
    form = client.get("/ui/sign-in")
    reply = client.post("/ui/sign-in", data={"csrf": csrf_of(form.text), "user": user},
                        follow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (303, landing)
    assert client.get(landing).status_code == 200
