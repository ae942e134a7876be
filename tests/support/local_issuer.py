"""A local OpenID Connect issuer for the tests: one RSA and one EC key per test process (made once,
at import), their JWKS in a file, and ``mint`` for tokens with any claim changed.

The API tests run in production mode against this issuer (``OUTCOMES_AUTH_JWKS_FILE``); the
default token carries every role and every clinic id the API tests use.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.identity import ROLES

ISSUER = "https://issuer.test/realms/outcomes"
AUDIENCE = "outcome-ledger"
SUB = "dr-test"
# Every clinic id the API tests open episodes in or ask about.
CLINICS = ("c", "c-1", "c-2", "clinic-a", "clinic-audit", "clinic-b", "clinic-big",
           "clinic-cohort", "clinic-f", "clinic-fuzz", "clinic-g", "clinic-logging-7",
           "clinic-north", "clinic-other", "clinic-p", "clinic-problems", "clinic-south",
           "vectors", "trial")

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())  # in no JWKS


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    """The public half of ``key`` as a JWK with ``kid``."""
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}


JWKS = {"keys": [public_jwk(RSA_KEY, "rsa-1"), public_jwk(EC_KEY, "ec-1")]}
JWKS_FILE = Path(tempfile.mkdtemp(prefix="outcomes-issuer-")) / "jwks.json"
JWKS_FILE.write_text(json.dumps(JWKS))


def claims(**changes: Any) -> dict[str, Any]:
    """The default claims (every role, every test clinic, valid for an hour) with ``changes``
    (a value of None removes the claim)."""
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUB, "iat": now, "nbf": now,
                            "exp": now + 3600, "roles": list(ROLES), "clinics": list(CLINICS)}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def mint(*, key: Any = EC_KEY, kid: str | None = "ec-1", algorithm: str | None = None,
         **changes: Any) -> str:
    """A token signed by ``key`` (default the JWKS's EC key) with ``claims(**changes)``."""
    algorithm = algorithm or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)


def bearer(token: str | None = None, **changes: Any) -> dict[str, str]:
    """An ``Authorization`` header carrying ``token`` (default: ``mint(**changes)``)."""
    return {"Authorization": f"Bearer {token or mint(**changes)}"}


def auth_settings() -> dict[str, Any]:
    """The ``Settings`` fields of production mode against this issuer."""
    return {"auth_issuer": ISSUER, "auth_audience": AUDIENCE, "auth_jwks_file": JWKS_FILE}
