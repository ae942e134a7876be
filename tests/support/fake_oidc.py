"""A fake OpenID Connect provider for the sign-in tests: the local issuer's (local_issuer.py)
metadata, JWKS and token endpoint as a tiny Starlette app, which authlib reaches through
``transport`` (httpx's ASGI transport: no socket, no network), and ``authorize`` for the
browser's visit to the authorization endpoint (the user signs in at once).

The token endpoint checks what a real provider checks: the code is one it issued, once, for
that redirect_uri and client, and the PKCE ``code_verifier`` hashes (S256) to the code's
``code_challenge``. It answers an access token of the local issuer (accepted by the API's
validator in production mode against that issuer) and an ID token for the client carrying
the authorization request's nonce. Knobs: ``access_changes`` (claims of the access token, e.g.
another ``aud``), ``id_changes`` (claims of the ID token, e.g. another ``nonce``),
``end_session`` (whether the metadata names an end-session endpoint), ``omit_id_token``."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey
from local_issuer import EC_KEY, ISSUER, JWKS, mint
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CLIENT_ID = "outcomes-ui"
PATH = urlsplit(ISSUER).path  # /realms/outcomes
SIGNING_KEY = ECKey.import_key(EC_KEY.private_bytes(  # the JWKS's "ec-1", as joserfc's key
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def s256(verifier: str) -> str:
    """RFC 7636's S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class FakeProvider:
    """The provider; ``user`` the claims of whoever signs in at it."""

    user: dict[str, Any] = field(default_factory=lambda: {
        "sub": "dr-oidc", "roles": ["clinician"], "clinics": ["clinic-north"]})
    access_changes: dict[str, Any] = field(default_factory=dict)
    id_changes: dict[str, Any] = field(default_factory=dict)
    end_session: bool = True
    omit_id_token: bool = False  # a token reply without an ID token
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_auth: list[str | None] = field(default_factory=list)  # each one's Authorization
    issued: list[dict[str, Any]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        found = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/protocol/auth",
                 "token_endpoint": f"{ISSUER}/protocol/token",
                 "jwks_uri": f"{ISSUER}/protocol/certs",
                 "response_types_supported": ["code"], "subject_types_supported": ["public"],
                 "id_token_signing_alg_values_supported": ["ES256", "RS256"],
                 "code_challenge_methods_supported": ["S256"],
                 "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"]}
        if self.end_session:
            found["end_session_endpoint"] = f"{ISSUER}/protocol/logout"
        return found

    def authorize(self, location: str) -> str:
        """The browser at the authorization endpoint ``location``: the user signs in; the
        callback URL it is sent back to (``redirect_uri?code=...&state=...``)."""
        assert location.startswith(f"{ISSUER}/protocol/auth?"), location
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        self.authorize_requests.append(query)
        assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    async def token(self, request: Request) -> JSONResponse:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.token_requests.append(form)
        self.token_auth.append(request.headers.get("authorization"))
        asked = self.codes.pop(form.get("code", ""), None)  # a code is good once
        if asked is None or form.get("grant_type") != "authorization_code" or (
                form.get("redirect_uri") != asked["redirect_uri"]):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if asked.get("code_challenge_method") != "S256" or (
                s256(form.get("code_verifier", "")) != asked.get("code_challenge")):
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "PKCE verification failed"}, 400)
        now = int(time.time())
        access = mint(**{"roles": self.user["roles"], "clinics": self.user["clinics"],
                         "sub": self.user["sub"], "exp": now + 600, **self.access_changes})
        id_claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": self.user["sub"], "iat": now,
                     "exp": now + 600, "nonce": asked.get("nonce"), **self.id_changes}
        id_token = jwt.encode({"alg": "ES256", "kid": "ec-1"},
                              {k: v for k, v in id_claims.items() if v is not None},
                              SIGNING_KEY)
        reply = {"access_token": access, "id_token": id_token, "token_type": "Bearer",
                 "expires_in": 600}
        if self.omit_id_token:
            del reply["id_token"]
        self.issued.append(reply)
        return JSONResponse(reply, headers={"Cache-Control": "no-store"})

    @property
    def app(self) -> Starlette:
        async def metadata(_: Request) -> JSONResponse:
            return JSONResponse(self.metadata())

        async def certs(_: Request) -> JSONResponse:
            return JSONResponse(JWKS)

        return Starlette(routes=[
            Route(f"{PATH}/.well-known/openid-configuration", metadata),
            Route(f"{PATH}/protocol/certs", certs),
            Route(f"{PATH}/protocol/token", self.token, methods=["POST"])])

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """authlib's way to this provider (``OidcSignIn(..., transport=)``)."""
        return httpx.ASGITransport(app=self.app)
