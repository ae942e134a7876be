"""The pages' OpenID Connect sign-in (ADR 0035) against a fake provider (tests/support/
fake_oidc.py) of the local test issuer: the code flow with PKCE signs in and opens the
caseload; a wrong state or nonce and an access token for another audience sign nobody in;
the session cookie's flags, its content unreadable; sign-out through the provider; no dev
sign-in with an issuer; HTML 404 pages under /ui/; CSRF refused."""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from fake_oidc import CLIENT_ID, FakeProvider, s256
from fastapi.testclient import TestClient
from local_issuer import ISSUER, auth_settings

from api import create_app
from api.ui.oidc import OidcSignIn
from bootstrap import Settings, build

NOW = datetime(2027, 12, 31, tzinfo=UTC)
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("192.0.2.7", 50000)
NORTH = "/ui/clinics/clinic-north/caseload"
SECRET = "a-test-session-secret-of-enough-length-0123456789"


def oidc_settings(folder: Path, **overrides: object) -> Settings:
    """Production mode against the local test issuer, with the pages' OIDC client."""
    return Settings(**{"persistence": "memory", "sqlite_path": folder / "outcomes.sqlite",
                       "allowed_hosts": "testserver", "rate_limit": "off", **auth_settings(),
                       "ui_client_id": CLIENT_ID, "ui_session_secret": SECRET, **overrides})


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@contextmanager
def serve(settings: Settings, provider: FakeProvider, client: tuple[str, int] = LOOPBACK,
          base_url: str = "http://testserver") -> Iterator[TestClient]:
    services = build(settings, clock=lambda: NOW)
    try:
        app = create_app(settings, services=services)
        app.state.oidc = OidcSignIn(settings, transport=provider.transport)
        with TestClient(app, client=client, base_url=base_url) as test_client:
            yield test_client
    finally:
        services.close()


@pytest.fixture
def client(tmp_path: Path, provider: FakeProvider) -> Iterator[TestClient]:
    with serve(oidc_settings(tmp_path), provider) as test_client:
        yield test_client


def start(client: TestClient) -> str:
    """The sign-in button's request; the provider's authorization URL it redirects to."""
    reply = client.get("/ui/sign-in/oidc", follow_redirects=False)
    assert reply.status_code == 302, reply.text
    return reply.headers["location"]


def sign_in(client: TestClient, provider: FakeProvider) -> str:
    """The whole flow; the callback's redirect target."""
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    assert reply.status_code == 303, reply.text
    return reply.headers["location"]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found[1]


def signed_out(client: TestClient) -> bool:
    reply = client.get(NORTH, follow_redirects=False)
    return (reply.status_code, reply.headers.get("location")) == (303, "/ui/sign-in")


def test_the_sign_in_page_has_the_issuers_button_and_no_dev_users(client):
    page = client.get("/ui/sign-in")
    assert page.status_code == 200
    assert '<form method="get" action="/ui/sign-in/oidc">' in page.text
    assert "Sign in with issuer.test</button>" in page.text
    assert "dr-lee" not in page.text and "development" not in page.text


def test_the_code_flow_signs_in_and_opens_the_caseload(client, provider):
    assert signed_out(client)
    target = sign_in(client, provider)
    assert target == NORTH  # the user's first clinic, a clinician's caseload
    page = client.get(target)
    assert page.status_code == 200 and "Caseload of clinic-north" in page.text
    assert "Signed in as <strong>dr-oidc</strong> (clinician)" in page.text
    assert "Sign out</button>" in page.text
    asked = provider.authorize_requests[-1]
    assert asked["redirect_uri"] == "http://testserver/ui/auth/callback"
    assert asked["scope"] == "openid profile" and asked["nonce"] and asked["state"]


def test_pkce_the_token_request_carries_the_verifier_of_the_s256_challenge(client, provider):
    sign_in(client, provider)
    asked, sent = provider.authorize_requests[-1], provider.token_requests[-1]
    assert asked["code_challenge_method"] == "S256"
    assert len(sent["code_verifier"]) >= 43
    assert s256(sent["code_verifier"]) == asked["code_challenge"]
    assert sent["client_id"] == CLIENT_ID and "client_secret" not in sent  # a public client


def test_a_wrong_state_is_a_400_page_and_nobody_is_signed_in(client, provider):
    callback = provider.authorize(start(client))
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    reply = client.get(forged, follow_redirects=False)
    assert reply.status_code == 400 and "<h1>Bad request</h1>" in reply.text
    assert "text/html" in reply.headers["content-type"]
    assert provider.token_requests == []  # the code was never exchanged
    assert signed_out(client)


def test_a_callback_without_a_started_sign_in_is_refused(client, provider):
    reply = client.get("/ui/auth/callback?code=abc&state=xyz", follow_redirects=False)
    assert reply.status_code == 400 and signed_out(client)


def test_an_id_token_with_another_nonce_is_refused(client, provider):
    provider.id_changes = {"nonce": "not-the-one-sent"}
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    assert reply.status_code == 400 and "ID token was refused" in reply.text
    assert signed_out(client)


def test_an_id_token_for_another_client_is_refused(client, provider):
    provider.id_changes = {"aud": "someone-else"}
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    assert reply.status_code == 400 and signed_out(client)


def test_an_access_token_for_another_audience_is_refused_with_a_clear_page(client, provider):
    provider.access_changes = {"aud": "another-api"}
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    assert reply.status_code == 403 and "<h1>Not allowed</h1>" in reply.text
    assert "its access token is not one this service accepts" in reply.text
    assert signed_out(client)


def set_cookie(reply) -> str:
    cookies = [v for k, v in reply.headers.multi_items() if k == "set-cookie"]
    assert len(cookies) == 1, cookies
    return cookies[0]


def flags(cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


def test_the_cookie_is_httponly_lax_under_ui_and_not_secure_on_loopback_http(client, provider):
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    cookie = set_cookie(reply)
    assert cookie.startswith("outcomes_ui=")
    assert {"httponly", "samesite", "path", "max-age"} <= flags(cookie)
    assert "secure" not in flags(cookie)
    assert "samesite=lax" in cookie.lower() and "path=/ui;" in cookie.lower() + ";"


def test_the_cookie_is_secure_for_a_client_not_on_loopback(tmp_path, provider):
    with serve(oidc_settings(tmp_path), provider, client=REMOTE,
               base_url="https://testserver") as remote:
        reply = remote.get("/ui/sign-in/oidc", follow_redirects=False)
        assert "secure" in flags(set_cookie(reply)) and "httponly" in flags(set_cookie(reply))
        callback = provider.authorize(reply.headers["location"])
        assert callback.startswith("https://testserver/ui/auth/callback?")
        signed = remote.get(callback, follow_redirects=False)
        assert signed.status_code == 303 and "secure" in flags(set_cookie(signed))
        assert remote.get(NORTH).status_code == 200


def test_the_cookie_is_secure_with_an_https_base_url_even_from_loopback(tmp_path, provider):
    settings = oidc_settings(tmp_path, ui_base_url="https://outcomes.example.org/")
    with serve(settings, provider) as proxied:
        reply = proxied.get("/ui/sign-in/oidc", follow_redirects=False)
        assert "secure" in flags(set_cookie(reply))
        asked = parse_qs(urlsplit(reply.headers["location"]).query)
        assert asked["redirect_uri"] == ["https://outcomes.example.org/ui/auth/callback"]


def test_the_cookies_max_age_ends_with_the_access_token(client, provider):
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    max_age = int(re.search(r"max-age=(\d+)", set_cookie(reply).lower())[1])
    assert 0 < max_age <= 600  # the fake's access token lives 600 s; the session 8 h at most


def decodings(value: str) -> list[bytes]:
    """Every way the cookie's value might be read without the key."""
    raw = value.encode()
    found = [raw]
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        for pad in ("", "=", "=="):
            with contextlib.suppress(ValueError):
                found.append(decode(raw + pad.encode()))
    return found


def test_the_cookie_holds_no_token_in_any_readable_form(client, provider):
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    value = set_cookie(reply).split(";")[0].split("=", 1)[1].strip('"')
    issued = provider.issued[-1]
    secrets = [issued["access_token"], issued["id_token"], "dr-oidc", "clinic-north"]
    secrets += [part for token in (issued["access_token"], issued["id_token"])
                for part in token.split(".")]
    for decoded in decodings(value):
        for secret in secrets:
            assert secret.encode() not in decoded


def test_a_changed_cookie_is_no_session(client, provider):
    sign_in(client, provider)
    value = client.cookies["outcomes_ui"]
    client.cookies.clear()
    client.cookies.set("outcomes_ui", value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB"),
                       path="/ui")
    assert signed_out(client)


def test_sign_out_ends_the_session_and_goes_to_the_providers_end_session(client, provider):
    sign_in(client, provider)
    page = client.get(NORTH)
    reply = client.post("/ui/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert reply.status_code == 303
    location = urlsplit(reply.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/protocol/logout"
    query = parse_qs(location.query)
    assert query["id_token_hint"] == [provider.issued[-1]["id_token"]]
    assert query["post_logout_redirect_uri"] == ["http://testserver/ui/sign-in"]
    assert "max-age=0" in set_cookie(reply).lower()
    assert signed_out(client)


def test_sign_out_without_an_end_session_endpoint_goes_to_the_sign_in_page(client, provider):
    provider.end_session = False
    sign_in(client, provider)
    page = client.get(NORTH)
    reply = client.post("/ui/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (303, "/ui/sign-in")
    assert signed_out(client)


def test_csrf_is_refused_without_the_token_in_oidc_mode(client, provider):
    sign_in(client, provider)
    for data in ({}, {"csrf": ""}, {"csrf": "forged"}):
        reply = client.post("/ui/sign-out", data=data, follow_redirects=False)
        assert reply.status_code == 400 and "<h1>Bad request</h1>" in reply.text
    assert client.get(NORTH).status_code == 200  # still signed in


def test_a_new_session_on_sign_in_no_fixation(client, provider):
    callback = provider.authorize(start(client))
    planted = client.cookies["outcomes_ui"]  # the session before sign-in (holding the state)
    assert client.get(callback, follow_redirects=False).status_code == 303
    signed = client.cookies["outcomes_ui"]
    assert signed != planted and client.get(NORTH).status_code == 200
    client.cookies.clear()
    client.cookies.set("outcomes_ui", planted, path="/ui")
    assert signed_out(client)  # the pre-sign-in session never became a signed-in one


def test_no_dev_sign_in_with_an_issuer(client):
    assert client.post("/ui/sign-in", data={"user": "dr-lee"}).status_code == 404
    assert "dr-lee" not in client.get("/ui/sign-in").text


def test_an_unknown_ui_path_is_an_html_404_and_the_apis_stay_problem_json(client):
    reply = client.get("/ui/nope")
    assert reply.status_code == 404 and "text/html" in reply.headers["content-type"]
    assert "<h1>Not found</h1>" in reply.text and '<main id="main"' in reply.text
    for path in ("/ui/static/nope.css", "/ui/clinics/clinic-north/nope", "/ui/sign-in/nope"):
        other = client.get(path)
        assert other.status_code == 404 and "<h1>Not found</h1>" in other.text, path
    wrong_method = client.delete("/ui/sign-in")
    assert wrong_method.status_code == 405 and "<h1>Method not allowed</h1>" in wrong_method.text
    api = client.get("/nope")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


def test_a_session_whose_token_expired_signs_in_again(client, provider):
    provider.access_changes = {"exp": int(time.time()) - 3600}  # expired beyond the leeway
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    assert reply.status_code == 403 and "expired" in reply.text and signed_out(client)


def test_only_the_latest_started_sign_in_completes_and_the_cookie_stays_small(client, provider):
    first = provider.authorize(start(client))
    for _ in range(10):
        start(client)
    assert len(client.cookies["outcomes_ui"]) < 1500  # one state kept, not eleven
    latest = provider.authorize(start(client))
    assert client.get(first, follow_redirects=False).status_code == 400  # superseded
    assert client.get(latest, follow_redirects=False).status_code == 303
    assert client.get(NORTH).status_code == 200


def test_the_apis_paths_carry_no_session(client, provider):
    sign_in(client, provider)
    reply = client.get("/health")
    assert reply.status_code == 200 and "set-cookie" not in reply.headers


@pytest.mark.parametrize("mode", ["development", "bearer only"])
def test_unknown_ui_paths_are_html_404_in_the_other_modes_too(tmp_path, mode):
    fields = {} if mode == "development" else auth_settings()
    settings = Settings(persistence="memory", sqlite_path=tmp_path / "o.sqlite",
                        allowed_hosts="testserver", rate_limit="off", **fields)
    services = build(settings, clock=lambda: NOW)
    try:
        with TestClient(create_app(settings, services=services), client=LOOPBACK) as other:
            reply = other.get("/ui/nope")
            assert reply.status_code == 404 and "<h1>Not found</h1>" in reply.text
            assert other.get("/ui/sign-in/oidc").status_code == 404  # no OIDC sign-in here
            assert other.get("/nope").headers["content-type"].startswith("application/problem+json")
    finally:
        services.close()


def test_the_fake_provider_refuses_a_wrong_verifier_so_the_pkce_test_means_something(provider):
    callback = provider.authorize(
        f"{ISSUER}/protocol/auth?response_type=code&client_id={CLIENT_ID}&state=s&nonce=n"
        f"&redirect_uri=http://testserver/cb&code_challenge={s256('right' * 9)}"
        "&code_challenge_method=S256")
    code = parse_qs(urlsplit(callback).query)["code"][0]

    async def exchange(verifier: str) -> int:
        async with httpx.AsyncClient(transport=provider.transport) as http:
            reply = await http.post(f"{ISSUER}/protocol/token", data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": "http://testserver/cb", "client_id": CLIENT_ID})
            return reply.status_code

    assert anyio.run(exchange, "wrong" * 9) == 400


def test_a_confidential_client_authenticates_at_the_token_endpoint(tmp_path, provider):
    settings = oidc_settings(tmp_path, ui_client_secret="s3cret")
    with serve(settings, provider) as confidential:
        sign_in(confidential, provider)
        assert confidential.get(NORTH).status_code == 200
    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:s3cret".encode()).decode()
    assert provider.token_auth == [expected]
    assert "code_verifier" in provider.token_requests[-1]  # PKCE as well


def test_a_token_reply_without_an_id_token_signs_nobody_in(client, provider):
    provider.omit_id_token = True
    reply = client.get(provider.authorize(start(client)), follow_redirects=False)
    assert reply.status_code == 400 and "sent no ID token" in reply.text and signed_out(client)
