"""Broken authentication (OWASP API2:2023): every kind of invalid bearer token is a 401
problem+json naming the failed check, with ``WWW-Authenticate: Bearer`` (RFC 6750 §3), never
echoing the token; GET /health needs none; the OpenAPI document declares the bearer scheme and
401/403 on every protected operation."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from api_helpers import PROBLEM_TYPE
from cryptography.hazmat.primitives import serialization
from local_issuer import EC_KEY, OTHER_KEY, RSA_KEY, SUB, bearer, claims, mint

from api.auth import TokenValidator, claim

INVALID = 'Bearer error="invalid_token"'
NOW = int(time.time())


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none() -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."


def _hs256_with_the_public_key() -> str:
    """The classic key-confusion attack: HS256 'signed' with the RSA public key's PEM."""
    public = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    body = _b64(claims())
    import hashlib
    import hmac
    signature = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _wrong_signature() -> str:
    header, body, _ = mint().split(".")
    _, _, other = mint(key=OTHER_KEY, kid="ec-1").split(".")
    return f"{header}.{body}.{other}"


CASES = [
    ("malformed", lambda: "not-a-jwt", "the token is malformed (not a JWS compact serialisation)"),
    ("expired", lambda: mint(iat=NOW - 7200, nbf=NOW - 7200, exp=NOW - 3600),
     "the token has expired (exp)"),
    ("not-yet-valid", lambda: mint(nbf=NOW + 3600), "the token is not yet valid (nbf/iat)"),
    ("issued-in-the-future", lambda: mint(iat=NOW + 3600), "the token is not yet valid (nbf/iat)"),
    ("wrong-signature", _wrong_signature, "the token's signature does not verify"),
    ("key-not-in-jwks", lambda: mint(key=OTHER_KEY, kid="ec-rotated-away"),
     "the signing key (kid) is not in the issuer's JWKS"),
    ("wrong-audience", lambda: mint(aud="another-api"), "the token is for another audience (aud)"),
    ("wrong-issuer", lambda: mint(iss="https://evil.example/"),
     "the token is from another issuer (iss)"),
    ("alg-none", _alg_none, "the token's algorithm 'none' is not allowed (RS256, ES256 only)"),
    ("hs256-with-public-key", _hs256_with_the_public_key,
     "the token's algorithm 'HS256' is not allowed (RS256, ES256 only)"),
    ("no-sub", lambda: mint(sub=None), "the token has no sub claim"),
    ("no-exp", lambda: mint(exp=None), "the token has no exp claim"),
    ("empty-sub", lambda: mint(sub=""), "the token's sub is not 1..255 printable characters"),
    ("control-char-sub", lambda: mint(sub="dr\x00lee"),
     "the token's sub is not 1..255 printable characters"),
]


@pytest.mark.parametrize("make, detail", [(m, d) for _, m, d in CASES],
                         ids=[name for name, _, _ in CASES])
def test_an_invalid_token_is_a_401_naming_the_check(client, make, detail):
    token = make()
    response = client.get("/episodes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.headers["WWW-Authenticate"] == INVALID
    body = response.json()
    assert (body["code"], body["detail"]) == ("invalid-token", detail)
    assert token not in response.text
    for part in token.split("."):
        assert len(part) < 8 or part not in response.text


def test_a_missing_token_gets_the_same_challenge(client):
    response = client.get("/episodes", headers={"Authorization": ""})
    assert response.status_code == 401
    # the contract's one challenge for every 401 (issue 9), the detail says what was missing
    assert response.headers["WWW-Authenticate"] == INVALID
    assert response.json()["code"] == "authentication-required"
    assert response.json()["detail"] == ("a bearer token is required "
                                         "(Authorization: Bearer <JWT>)")


@pytest.mark.parametrize("value", ["Basic ZHI6bGVl", "Bearer", "Token abc.def.ghi"])
def test_another_scheme_is_an_invalid_token(client, value):
    response = client.get("/episodes", headers={"Authorization": value})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID
    assert response.json()["detail"] == "the Authorization header is not 'Bearer <token>'"


def test_authentication_comes_before_validation_and_changes_nothing(client):
    position = client.get("/health").json()["position"]
    response = client.post("/episodes", headers={"Authorization": ""}, json={"bogus": 1})
    assert response.status_code == 401
    assert client.get("/health").json()["position"] == position


def test_an_rs256_token_and_a_token_within_the_leeway_are_accepted(client):
    assert client.get("/episodes", headers=bearer(mint(key=RSA_KEY, kid="rsa-1"))).status_code \
        == 200
    late = mint(iat=NOW - 3600, exp=int(time.time()) - 10)  # 10 s late, leeway 30 s
    assert client.get("/episodes", headers=bearer(late)).status_code == 200


def test_health_and_the_docs_need_no_token(client):
    for path in ("/health", "/openapi.json", "/docs"):
        assert client.get(path, headers={"Authorization": ""}).status_code == 200, path


def test_the_openapi_document_declares_the_bearer_scheme_and_401_403(client):
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"]}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path == "/health":
                assert "security" not in operation
                continue
            assert operation["security"] == [{"bearer": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
            if not path.startswith("/criteria") or method == "post":
                assert "403" in operation["responses"], (method, path)
    text = json.dumps(document)
    assert "X-User-Id" not in text


def test_recorded_by_is_the_tokens_sub(client):
    headers = bearer(sub="dr-lee")
    opened = client.post("/episodes", headers=headers,
                         json={"patient_ref": "p", "clinic_id": "clinic-a"})
    trail = client.get(f"/episodes/{opened.json()['episode_id']}/audit").json()["items"]
    assert [e["recorded_by"] for e in trail] == ["dr-lee"]
    assert SUB != "dr-lee"


@pytest.mark.parametrize("roles_claim, clinics_claim, extra, expected", [
    ("roles", "clinics", {}, ({"admin", "auditor", "clinician", "researcher"}, {"c"})),
    ("realm_access.roles", "org.clinics",
     {"realm_access": {"roles": ["clinician", "offline_access"]}, "org": {"clinics": ["c"]}},
     ({"clinician"}, {"c"})),
    ("scp", "clinics", {"scp": "auditor openid"}, ({"auditor"}, {"c"})),
    ("realm_access.roles", "clinics", {"realm_access": "flat"}, (set(), {"c"})),
    ("roles", "org", {"org": "north clinic-b"}, ({"admin", "auditor", "clinician", "researcher"},
                                                set())),
], ids=["top-level", "dotted-keycloak", "space-separated", "path-through-a-string",
        "clinics-as-a-string-grant-none"])
def test_roles_and_clinics_come_from_configured_claim_paths(roles_claim, clinics_claim, extra,
                                                            expected):
    from local_issuer import AUDIENCE, ISSUER, JWKS

    from api.auth import JwksFile

    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=JwksFile(JWKS),
                               roles_claim=roles_claim, clinics_claim=clinics_claim)
    principal = validator.principal(mint(clinics=["c"], **extra))
    assert (set(principal.roles), set(principal.clinics)) == expected


def test_claim_reads_dotted_paths():
    claims_ = {"realm_access": {"roles": ["a"]}, "roles": ["b"]}
    assert claim(claims_, "realm_access.roles") == ["a"]
    assert claim(claims_, "roles") == ["b"]
    assert claim(claims_, "realm_access.missing") is None
    assert claim(claims_, "roles.deeper") is None
    assert claim({"extn.clinics": ["c"]}, "extn.clinics") == ["c"]  # Entra ID's literal name


def test_a_token_signed_by_the_ec_key_verifies_with_pyjwt_too():
    # The issuer helper itself is sound: the token verifies with the public key alone.
    token = mint()
    assert jwt.decode(token, EC_KEY.public_key(), algorithms=["ES256"],
                      audience="outcome-ledger")["sub"] == SUB


@pytest.mark.parametrize("header", [
    {"alg": "ES256", "kid": ["ec-1"]}, {"alg": "ES256", "kid": {"k": 1}},
    {"alg": "ES256", "kid": "ec-1", "crit": ["exp"]},
], ids=["kid-list", "kid-object", "crit"])
def test_a_header_pyjwt_refuses_is_a_malformed_token_not_a_500(client, header):
    import base64
    import json as json_

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json_.dumps(value).encode()).rstrip(b"=").decode()

    token = f"{part(header)}.{part({'sub': 'x'})}.c2ln"
    response = client.get("/episodes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"] == "the token is malformed (not a JWS compact serialisation)"


def test_failed_authentications_count_against_the_client_address():
    from api_helpers import memory_settings, running

    with running(memory_settings(rate_limit="3/minute")) as limited:
        statuses = [limited.get("/episodes", headers={"Authorization": "Bearer x.y.z"}).status_code
                    for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
