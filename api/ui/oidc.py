"""The pages' OpenID Connect sign-in with an issuer configured (ADR 0035): the authorization
code flow with PKCE (S256) through authlib's Starlette client, which checks the state and the
nonce and validates the ID token; the access token the provider returns is then validated by
the API's own ``TokenValidator`` (issuer, audience, signature, roles and clinics claims) and
kept in the encrypted session cookie (``api.ui.session``) as the pages' bearer token.

Routes: GET /ui/sign-in (a "Sign in with <issuer host>" button), GET /ui/sign-in/oidc (to the
provider), GET /ui/auth/callback (back from it), POST /ui/sign-out (CSRF-checked; to the
provider's ``end_session_endpoint`` when its metadata has one)."""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import structlog
from authlib.common.errors import AuthlibBaseError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from api.auth import InvalidToken, TokenValidator
from api.ui.guard import landing
from api.ui.rendering import PageError, checked_form, render
from api.ui.session import EXPIRES_KEY
from bootstrap import Settings

with warnings.catch_warnings():
    # authlib 1.9 warns (to stderr, always) that it falls back on httpx while httpx2 is not
    # installed; the fallback is what we use (ADR 0035). Importing authlib.deprecate adds that
    # "always" filter, undone when this block ends; our "ignore" goes in front of it.
    import authlib.deprecate  # noqa: F401
    warnings.filterwarnings("ignore", message="The httpx module is deprecated",
                            category=DeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.starlette_client import OAuth

log = structlog.get_logger("ui.oidc")
router = APIRouter(prefix="/ui", include_in_schema=False)
NAME = "issuer"
SCOPE = "openid profile"
ID_TOKEN_BUDGET = 1200  # bytes: a longer ID token is not kept (the sign-out then sends client_id)


class OidcSignIn:
    """The registered OpenID Connect client of ``settings.auth_issuer`` (``ui_client_id``, the
    secret if any; PKCE S256 always). ``transport`` (tests) carries its HTTP requests to the
    provider (metadata, token, JWKS); default: the network."""

    def __init__(self, settings: Settings, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert settings.auth_issuer and settings.ui_client_id  # install checks
        self.issuer = settings.auth_issuer  # the ID token's iss, exactly as the API's tokens'
        self.host = urlsplit(self.issuer).hostname or self.issuer
        self.base_url = settings.ui_base_url
        self.client_id = settings.ui_client_id
        secret = settings.ui_client_secret.get_secret_value() if settings.ui_client_secret else None
        client_kwargs: dict[str, Any] = {"scope": SCOPE, "code_challenge_method": "S256",
                                         "timeout": 10.0}
        if secret is None:
            client_kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE only
        if transport is not None:
            client_kwargs["transport"] = transport
        self.oauth = OAuth()
        self.client = self.oauth.register(
            NAME, client_id=self.client_id, client_secret=secret,
            server_metadata_url=f"{self.issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs=client_kwargs)

    def url(self, request: Request, path: str) -> str:
        """The external URL of ``path`` (``/ui/...``): under ``ui_base_url``, else the
        request's own base URL."""
        base = self.base_url or str(request.base_url).rstrip("/")
        return base + path


def oidc_of(request: Request) -> OidcSignIn:
    sign_in: OidcSignIn = request.app.state.oidc
    return sign_in


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request) -> Response:
    oidc = oidc_of(request)
    return render(request, "sign_in.html", {"title": "Sign in", "issuer_host": oidc.host})


@router.post("/sign-in")
def no_dev_sign_in(request: Request) -> Response:
    """The development sign-in's form: not with an issuer (404, as an unknown page)."""
    raise PageError(404, "there is no development sign-in on this server: use the sign-in page")


@router.get("/sign-in/oidc")
async def start(request: Request) -> Response:
    """To the provider's authorization endpoint (state, nonce and the PKCE verifier kept in
    the session by authlib)."""
    oidc = oidc_of(request)
    for key in [k for k in request.session if k.startswith(f"_state_{NAME}_")]:
        del request.session[key]  # one sign-in under way at a time: the cookie stays small
    try:
        return await oidc.client.authorize_redirect(  # type: ignore[no-any-return]
            request, oidc.url(request, "/ui/auth/callback"))
    except (httpx.HTTPError, ValueError, RuntimeError) as exc:
        log.warning("identity provider unreachable", error_type=type(exc).__name__)
        raise PageError(502, f"the identity provider at {oidc.host} cannot be reached; try "
                             "again later") from None


@router.get("/auth/callback")
async def callback(request: Request) -> Response:
    """Back from the provider: authlib exchanges the code (with the PKCE verifier) after
    checking the state, and validates the ID token (signature, issuer, audience, nonce); the
    to the page the caller's role reads first (``guard.landing``).
    to the caller's first clinic's caseload (the criteria page without a clinic).

    Errors (HTML pages, nothing signed in): 400 for a wrong or missing state, a provider's
    error reply or a refused ID token; 403 for an access token the API does not accept; 502
    when the provider cannot be reached. A refused ID or access token (after a good state)
    also ends any earlier session: the person at the browser is not who it was."""
    oidc = oidc_of(request)
    try:
        token: dict[str, Any] = await oidc.client.authorize_access_token(
            request, claims_options={"iss": {"essential": True, "values": [oidc.issuer]},
                                     "aud": {"essential": True, "values": [oidc.client_id]}})
    except OAuthError as exc:
        log.info("sign-in refused", error=str(exc.error)[:64])
        # The session stays as it was: a forged or stale callback neither signs in nor out,
        # nor cancels the sign-in under way.
        raise PageError(400, f"the sign-in did not complete ({str(exc.error)[:64]}): start again from "
                             "the sign-in page") from None
    except httpx.HTTPError as exc:
        log.warning("identity provider unreachable", error_type=type(exc).__name__)
        raise PageError(502, f"the identity provider at {oidc.host} cannot be reached; try "
                             "again later") from None
    except (JoseError, AuthlibBaseError) as exc:  # the ID token's signature or a claim
        log.info("sign-in refused", error=type(exc).__name__)
        request.session.clear()
        raise PageError(400, "the identity provider's ID token was refused "
                             f"({type(exc).__name__}): start again from the sign-in page") from None
    if "userinfo" not in token:  # authlib validated an ID token only when there was one
        log.info("sign-in refused", problem="no ID token")
        request.session.clear()
        raise PageError(400, "the identity provider sent no ID token: start again from the "
                             "sign-in page")
    access = token.get("access_token")
    validator: TokenValidator = request.app.state.validator
    try:
        if not isinstance(access, str):
            raise InvalidToken("the provider sent no access token")
        principal = await run_in_threadpool(validator.principal, access)
    except InvalidToken as exc:
        log.info("sign-in refused", problem="access token not accepted")
        request.session.clear()
        raise PageError(403, f"{oidc.host} signed you in, but its access token is not one this "
                             f"service accepts: {exc}. The identity provider's administrator "
                             "must issue this client tokens for the service's audience with "
                             "the roles and clinics claims.") from None
    request.session.clear()  # a new session (and CSRF token) per sign-in: no fixation
    request.session["token"] = access
    request.session[EXPIRES_KEY] = int(jwt.decode(access, options={"verify_signature": False})
                                       ["exp"])  # validated above
    id_token = token.get("id_token")
    if isinstance(id_token, str) and len(id_token) <= ID_TOKEN_BUDGET:
        request.session["id_token"] = id_token  # the sign-out's id_token_hint
    return RedirectResponse(landing(principal.roles, principal.clinics), status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Ends the session (CSRF-checked); to the provider's end-session endpoint when its
    metadata names one (with ``id_token_hint`` or ``client_id`` and
    ``post_logout_redirect_uri`` = the sign-in page), else to the sign-in page."""
    await checked_form(request)
    id_token = request.session.get("id_token")
    request.session.clear()
    oidc = oidc_of(request)
    try:
        metadata = await oidc.client.load_server_metadata()
    except (httpx.HTTPError, ValueError):
        metadata = {}
    if not metadata.get("end_session_endpoint"):
        return RedirectResponse("/ui/sign-in", status_code=303)
    extra = {} if isinstance(id_token, str) else {"client_id": oidc.client_id}
    logout = await oidc.client.create_logout_url(
        post_logout_redirect_uri=oidc.url(request, "/ui/sign-in"),
        id_token_hint=id_token if isinstance(id_token, str) else None, **extra)
    return RedirectResponse(logout["url"], status_code=303)
