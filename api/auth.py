"""Bearer-token authentication: OpenID Connect access tokens (JWT) validated with PyJWT.

``TokenValidator.principal(token)`` checks, in this order: the header names RS256 or ES256 (fixed
here, never taken from configuration or the token: ``none`` and HS* are refused, so a token
"signed" with the public key as an HMAC secret is refused too), the signing key is in the
issuer's JWKS (``kid``), the signature, ``exp``, ``nbf`` and ``iat`` (with ``leeway`` seconds),
``iss``, ``aud``, and a ``sub``. Roles and clinics come from configurable claim paths (dotted:
Keycloak's ``realm_access.roles``). A failed check raises ``InvalidToken`` naming the check,
never quoting the token (RFC 6750 §3.1 ``invalid_token``).

Keys come from a JWKS URL (``jwt.PyJWKClient``: cached, refetched on an unknown ``kid``), a JWKS
file, or, in development mode (no issuer configured), the local issuer ``DevIssuer``, whose ES256
key lives beside the event store: its tokens are validated by this same code.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import AuthenticationRequired
from api.identity import ROLES, Principal
from api.limits import count_request
from bootstrap import Settings
from trust.files import write_new_private

ALGORITHMS = ("RS256", "ES256")  # fixed server-side (RFC 8725 §3.1)
DEV_ISSUER = "urn:outcome-ledger:dev"
DEV_AUDIENCE = "outcome-ledger"
REALM = "outcome-ledger"
MAX_SUB = 255


class InvalidToken(AuthenticationRequired):
    """A bearer token was sent but failed ``check`` (401, ``error="invalid_token"``)."""

    code = "invalid-token"


class KeySource(Protocol):
    def key(self, kid: str | None) -> jwt.PyJWK:
        """The signing key named ``kid``. Raises ``InvalidToken`` when there is none."""
        ...


class JwksFile:
    """Keys from a JWKS document (a file's contents, or the development issuer's key)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.keys = jwt.PyJWKSet.from_dict(document)

    @classmethod
    def read(cls, path: Path) -> JwksFile:
        return cls(json.loads(path.read_text()))

    def key(self, kid: str | None) -> jwt.PyJWK:
        for candidate in self.keys.keys:
            if candidate.key_id == kid or (kid is None and len(self.keys.keys) == 1):
                return candidate
        raise InvalidToken("the signing key (kid) is not in the issuer's JWKS")


class JwksUrl:
    """Keys from the issuer's JWKS URL: the set is cached (``lifespan`` seconds) and fetched
    again when a token names a ``kid`` the cache lacks (key rotation), at most once per
    ``cooldown`` seconds; after a failed fetch none is tried for ``cooldown`` seconds. So random
    ``kid`` values or an unreachable issuer cannot make every request wait on the network, nor
    hammer the issuer (PyJWT's own cooldown counts only from a successful refresh)."""

    def __init__(self, url: str, *, lifespan: float = 300, cooldown: float = 30,
                 timeout: float = 5) -> None:
        self.client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=lifespan,
                                      cooldown_duration=cooldown, timeout=timeout)
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._refreshed_at = self._failed_at = -math.inf

    def key(self, kid: str | None) -> jwt.PyJWK:
        if kid is None:
            raise InvalidToken("the token header has no kid")
        cached = self._cached()
        if cached is None or not any(k.key_id == kid for k in cached.keys):
            with self._lock:
                now = time.monotonic()
                if cached is None and now - self._failed_at < self.cooldown:
                    raise InvalidToken("the issuer's JWKS could not be fetched")
                if cached is not None:
                    if now - self._refreshed_at < self.cooldown:
                        raise InvalidToken("the signing key (kid) is not in the issuer's JWKS")
                    self._refreshed_at = now
        try:
            return self.client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            self._failed_at = time.monotonic()
            raise InvalidToken("the issuer's JWKS could not be fetched") from None
        except jwt.PyJWKClientError:
            raise InvalidToken("the signing key (kid) is not in the issuer's JWKS") from None

    def _cached(self) -> jwt.PyJWKSet | None:
        """The cached key set while it is fresh, else None."""
        cache = self.client.jwk_set_cache
        return cache.get() if cache is not None else None


def claim(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``realm_access.roles``), or None when any part is absent.
    A claim whose own name holds the dots (Entra ID's ``extn.clinics``) is taken first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: Any, *, spaced: bool = False) -> frozenset[str]:
    """A claim holding a list of strings, or with ``spaced`` one space-separated string (OAuth
    ``scope`` style, for roles). Clinics must be a list: split on spaces, one clinic id holding a
    space would grant two clinics. Anything else grants nothing."""
    if spaced and isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


# PyJWT's exceptions -> which check failed (most specific first).
CHECKS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired (exp)"),
    (jwt.ImmatureSignatureError, "the token is not yet valid (nbf/iat)"),
    (jwt.InvalidAudienceError, "the token is for another audience (aud)"),
    (jwt.InvalidIssuerError, "the token is from another issuer (iss)"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not allowed (RS256, ES256 only)"),
    (jwt.DecodeError, "the token is malformed"),
]


class TokenValidator:
    """Validates bearer tokens of one issuer for one audience (see the module docstring)."""

    def __init__(self, *, issuer: str, audience: str, keys: KeySource,
                 roles_claim: str = "roles", clinics_claim: str = "clinics",
                 leeway: float = 30) -> None:
        self.issuer, self.audience, self.keys = issuer, audience, keys
        self.roles_claim, self.clinics_claim, self.leeway = roles_claim, clinics_claim, leeway

    def principal(self, token: str) -> Principal:
        """The ``Principal`` a valid token names. Raises ``InvalidToken`` (the failed check)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:  # DecodeError, and InvalidTokenError for a bad kid or crit
            raise InvalidToken("the token is malformed (not a JWS compact serialisation)") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidToken(f"the token's algorithm {str(algorithm)[:16]!r} is not allowed "
                               "(RS256, ES256 only)")
        key = self.keys.key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim} claim") from None
        except jwt.PyJWTError as exc:
            detail = next((d for cls, d in CHECKS if isinstance(exc, cls)),
                          "the token's claims are invalid")
            raise InvalidToken(detail) from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB or not sub.isprintable():
            raise InvalidToken(f"the token's sub is not 1..{MAX_SUB} printable characters")
        return Principal(sub=sub,
                         roles=_strings(claim(claims, self.roles_claim), spaced=True) & frozenset(ROLES),
                         clinics=_strings(claim(claims, self.clinics_claim)))


class DevIssuer:
    """The local issuer of development mode: an ES256 key in ``path`` (PEM, mode 600, created
    with ``cryptography`` on first use), its JWKS, and ``mint`` for ``outcomes dev-token``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            if not write_new_private(path, pem):  # made meanwhile by another process
                time.sleep(0.1)  # (serve, dev-token): let it finish writing
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an EC private key")
        self.private_key = loaded
        public = loaded.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = "dev-" + hashlib.sha256(public).hexdigest()[:16]

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWKS document."""
        jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(
            self.private_key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}]}

    def mint(self, *, sub: str, roles: Iterable[str], clinics: Iterable[str], ttl: int,
             roles_claim: str = "roles", clinics_claim: str = "clinics",
             audience: str = DEV_AUDIENCE) -> str:
        """A token for ``sub`` valid ``ttl`` seconds from now, roles and clinics at the
        configured claim paths."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": DEV_ISSUER, "aud": audience, "sub": sub,
                                  "iat": now, "nbf": now, "exp": now + ttl}
        for path, values in ((roles_claim, sorted(set(roles))), (clinics_claim, sorted(set(clinics)))):
            *parents, last = path.split(".")
            node = claims
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = values
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self.kid})


def dev_key_path(settings: Settings) -> Path:
    """Where development mode keeps its issuer key: beside the SQLite store (``var/``)."""
    return settings.sqlite_path.parent / "dev-issuer.key"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validator(settings: Settings) -> TokenValidator:
    """The validator the settings describe: production mode when ``auth_issuer`` is set (then
    ``auth_audience`` and exactly one of ``auth_jwks_url``/``auth_jwks_file`` are required),
    development mode (the local issuer) otherwise. Raises ``ValueError`` naming the setting."""
    keys: KeySource
    if settings.auth_issuer is None:
        issuer, audience = DEV_ISSUER, settings.auth_audience or DEV_AUDIENCE
        keys = JwksFile(DevIssuer(dev_key_path(settings)).jwks())
    else:
        issuer, audience = settings.auth_issuer, settings.auth_audience or ""
        if not audience:
            raise ValueError("OUTCOMES_AUTH_AUDIENCE is required when OUTCOMES_AUTH_ISSUER is set")
        if (settings.auth_jwks_url is None) == (settings.auth_jwks_file is None):
            raise ValueError("give exactly one of OUTCOMES_AUTH_JWKS_URL or "
                             "OUTCOMES_AUTH_JWKS_FILE when OUTCOMES_AUTH_ISSUER is set")
        if settings.auth_jwks_url is not None:
            keys = JwksUrl(settings.auth_jwks_url)
        else:
            assert settings.auth_jwks_file is not None
            try:
                keys = JwksFile.read(settings.auth_jwks_file)
            except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                raise ValueError(f"OUTCOMES_AUTH_JWKS_FILE: cannot read a JWKS from "
                                 f"{settings.auth_jwks_file}: {exc}") from None
    return TokenValidator(issuer=issuer, audience=audience, keys=keys,
                          roles_claim=settings.auth_roles_claim,
                          clinics_claim=settings.auth_clinics_claim, leeway=settings.auth_leeway)


bearer = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="JWT",
                    description="An OpenID Connect access token (JWT, RS256 or ES256) from the "
                                "configured issuer; `outcomes dev-token` in development mode.")


def authenticate(request: Request, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The router-level dependency of every protected route: validates the bearer token with
    ``request.app.state.validator`` and stores the ``Principal`` on ``request.state.principal``.
    Raises ``AuthenticationRequired`` (no token) or ``InvalidToken``."""
    try:
        if credentials is None:
            if request.headers.get("authorization"):
                raise InvalidToken("the Authorization header is not 'Bearer <token>'")
            raise AuthenticationRequired("a bearer token is required (Authorization: Bearer <JWT>)")
        token_validator: TokenValidator = request.app.state.validator
        principal = token_validator.principal(credentials.credentials)
    except (AuthenticationRequired, InvalidToken):
        count_request(request)  # a failed authentication still counts, against the address
        raise
    request.state.principal = principal
    return principal
