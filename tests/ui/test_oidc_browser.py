"""The OpenID Connect sign-in in Chromium: the browser's requests to the service and to the
provider are answered in-process (Playwright's request routing to a TestClient of the app and
to the fake provider, tests/support/fake_oidc.py), so the real redirects, cookies and forms run
without any socket. Signs in with the button, reaches the caseload, signs out; the sign-in,
error and 404 pages have no axe-core violation."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import axe_violations
from fake_oidc import FakeProvider
from fastapi.testclient import TestClient
from local_issuer import ISSUER
from playwright.sync_api import Page, Route, expect
from test_oidc_flow import NORTH, oidc_settings, serve

pytestmark = pytest.mark.ui
BASE = "http://testserver"


@pytest.fixture
def routed(page: Page, tmp_path: Path) -> Iterator[tuple[Page, FakeProvider, TestClient]]:
    """``page`` whose requests to ``BASE`` reach the app and to the issuer the provider."""
    provider = FakeProvider()
    with serve(oidc_settings(tmp_path), provider) as client:
        def app(route: Route) -> None:
            request = route.request
            client.cookies.clear()  # the browser's cookies only
            headers = {k: v for k, v in request.all_headers().items()
                       if k.lower() not in ("content-length", "host") and not k.startswith(":")}
            reply = client.request(request.method, request.url, content=request.post_data_buffer,
                                   headers=headers, follow_redirects=False)
            route.fulfill(status=reply.status_code, body=reply.content,
                          headers=dict(reply.headers.multi_items()))

        def issuer(route: Route) -> None:
            # The provider's sign-in page: the user is known, one link back to the service (a
            # redirect of a routed reply to another origin is not routed again by Chromium).
            back = html.escape(provider.authorize(route.request.url))
            route.fulfill(status=200, content_type="text/html", body=(
                '<!doctype html><html lang="en"><title>Issuer</title><main><h1>Issuer</h1>'
                f'<a href="{back}">Continue to Outcome Ledger</a></main></html>'))

        page.route(f"{BASE}/**", app)
        page.route(f"{ISSUER}/protocol/auth?**", issuer)
        page.route(f"{ISSUER}/protocol/logout?**", lambda route: route.fulfill(
            status=200, content_type="text/html", body=(
                '<!doctype html><html lang="en"><title>Issuer</title><main><h1>Signed out</h1>'
                f'<a href="{BASE}/ui/sign-in">Back</a></main></html>')))
        yield page, provider, client


def test_sign_in_with_the_issuer_reaches_the_caseload_and_signs_out(routed):
    page, _, client = routed
    page.goto(f"{BASE}/ui/sign-in")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert axe_violations(page) == []
    page.get_by_role("button", name="Sign in with issuer.test").click()
    page.get_by_role("link", name="Continue to Outcome Ledger").click()
    expect(page).to_have_url(f"{BASE}{NORTH}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Caseload of clinic-north")
    expect(page.locator(".who")).to_contain_text("Signed in as dr-oidc (clinician)")
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("outcomes_ui", True, "Lax")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(re.escape(f"{ISSUER}/protocol/logout?id_token_hint=")))
    page.get_by_role("link", name="Back").click()
    expect(page).to_have_url(f"{BASE}/ui/sign-in")
    client.cookies.clear()  # the browser's cookie now is no signed-in session
    for left in page.context.cookies():
        client.cookies.set(left["name"], left["value"], path="/ui")
    reply = client.get(NORTH, follow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (303, "/ui/sign-in")


def test_the_error_pages_are_html_and_accessible(routed):
    page, provider, _ = routed
    reply = page.goto(f"{BASE}/ui/nope")
    assert reply is not None and reply.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    assert axe_violations(page) == []
    provider.access_changes = {"aud": "another-api"}
    page.goto(f"{BASE}/ui/sign-in")
    page.get_by_role("button", name="Sign in with issuer.test").click()
    page.get_by_role("link", name="Continue to Outcome Ledger").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.locator("main")).to_contain_text("its access token is not one this service accepts")
    assert axe_violations(page) == []
