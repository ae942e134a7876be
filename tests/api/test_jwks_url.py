"""Keys from the issuer's JWKS URL (``OUTCOMES_AUTH_JWKS_URL``), served by a tiny HTTP server on
127.0.0.1 in a thread: the set is cached (one fetch for many requests), and a token naming a
``kid`` the cache lacks (the issuer rotated its key) makes it fetch the set again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from api_helpers import memory_settings, running
from cryptography.hazmat.primitives.asymmetric import ec
from local_issuer import AUDIENCE, EC_KEY, ISSUER, bearer, mint, public_jwk

from api.auth import JwksUrl, TokenValidator
from api.deps import AuthenticationRequired


class Issuer:
    """A JWKS endpoint whose key set can be swapped; counts the fetches."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": [public_jwk(EC_KEY, "ec-1")]}
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.fetches += 1
                body = json.dumps(issuer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    served = Issuer()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_the_server_validates_tokens_with_keys_from_the_jwks_url(issuer: Issuer) -> None:
    settings = memory_settings(auth_jwks_file=None, auth_jwks_url=issuer.url)
    with running(settings) as client:
        for _ in range(3):
            assert client.get("/episodes").status_code == 200
        assert issuer.fetches == 1  # cached
        unknown = client.get("/episodes", headers=bearer(
            mint(key=ec.generate_private_key(ec.SECP256R1()), kid="ec-unknown")))
        assert unknown.status_code == 401
        assert unknown.json()["detail"] == "the signing key (kid) is not in the issuer's JWKS"


def test_a_new_kid_refreshes_the_cached_set(issuer: Issuer) -> None:
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE,
                               keys=JwksUrl(issuer.url, cooldown=0))
    assert validator.principal(mint()).sub == "dr-test"
    assert issuer.fetches == 1
    # The issuer rotates: a new key with a new kid, the old one withdrawn
    rotated = ec.generate_private_key(ec.SECP256R1())
    issuer.jwks = {"keys": [public_jwk(rotated, "ec-2")]}
    assert validator.principal(mint(key=rotated, kid="ec-2", sub="dr-new")).sub == "dr-new"
    assert issuer.fetches == 2
    # A kid still unknown after the refresh is refused
    with pytest.raises(AuthenticationRequired, match="not in the issuer's JWKS"):
        validator.principal(mint(key=rotated, kid="ec-3"))


def test_an_unreachable_jwks_url_is_a_401_naming_it() -> None:
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE,
                               keys=JwksUrl("http://127.0.0.1:9/certs", timeout=2))
    with pytest.raises(AuthenticationRequired, match="the issuer's JWKS could not be fetched"):
        validator.principal(mint())


def test_random_kids_refresh_the_set_at_most_once_per_cooldown(issuer: Issuer) -> None:
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=JwksUrl(issuer.url))
    assert validator.principal(mint()).sub == "dr-test"
    stranger = ec.generate_private_key(ec.SECP256R1())
    for n in range(5):
        with pytest.raises(AuthenticationRequired, match="not in the issuer's JWKS"):
            validator.principal(mint(key=stranger, kid=f"random-{n}"))
    assert issuer.fetches == 1  # within the cooldown of the first fetch: no refresh at all
    assert validator.principal(mint()).sub == "dr-test"  # a known kid is still served


def test_after_a_failed_fetch_none_is_tried_for_the_cooldown() -> None:
    import socket
    import time

    # An issuer that accepts connections and never answers (an outage behind a load balancer)
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(64)
    try:
        keys = JwksUrl(f"http://127.0.0.1:{stalled.getsockname()[1]}/certs", timeout=0.3)
        validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=keys)
        with pytest.raises(AuthenticationRequired, match="could not be fetched"):
            validator.principal(mint())
        started = time.monotonic()
        for n in range(10):
            with pytest.raises(AuthenticationRequired, match="could not be fetched"):
                validator.principal(mint(kid=f"random-{n}"))
        assert time.monotonic() - started < 0.3  # answered at once, not 10 x the timeout
    finally:
        stalled.close()
