"""Development mode (no ``OUTCOMES_AUTH_ISSUER``): ``outcomes dev-token`` mints tokens the server
accepts through the same validation as production; ``serve`` refuses a non-loopback host; the
issuer's key is created once beside the store, mode 600. Writing commands record
``cli:<os user>``."""

from __future__ import annotations

import getpass
import stat
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import create_app
from bootstrap import Settings, build
from cli import app

runner = CliRunner()
FHIR = Path(__file__).parents[1] / "importers" / "data" / "keys.json"


def dev_token(*args: str) -> str:
    result = runner.invoke(app, ["dev-token", *args])
    assert result.exit_code == 0, result.output
    token: str = result.stdout.strip()
    return token


def test_dev_token_prints_a_bare_token_the_server_accepts(tmp_path: Path) -> None:
    token = dev_token("--sub", "dr-lee", "--role", "clinician", "--role", "auditor",
                      "--clinic", "clinic-north", "--ttl", "600")
    assert token.count(".") == 2 and "\n" not in token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["sub"], claims["roles"], claims["clinics"]) == (
        "dr-lee", ["auditor", "clinician"], ["clinic-north"])
    assert claims["exp"] - claims["iat"] == 600
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    key = tmp_path / "var" / "dev-issuer.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # The server in development mode (the same settings: no issuer, the test's store) accepts
    # it; it keeps its read models current itself (no `projections run` in this test).
    settings = Settings(projections="inline")
    services = build(settings)
    try:
        with TestClient(create_app(settings, services=services), base_url="http://127.0.0.1") as client:
            headers = {"Authorization": f"Bearer {token}"}
            opened = client.post("/episodes", headers=headers, json={
                "patient_ref": "p-1", "clinic_id": "clinic-north", "opened_on": "2026-01-05"})
            assert opened.status_code == 201, opened.text
            audit = client.get(f"/episodes/{opened.json()['episode_id']}/audit", headers=headers)
            assert audit.json()["items"][0]["recorded_by"] == "dr-lee"
            other = client.post("/episodes", headers=headers, json={
                "patient_ref": "p-1", "clinic_id": "clinic-south"})
            assert other.status_code == 403
            assert client.get("/episodes").status_code == 401
    finally:
        services.close()


def test_the_key_is_made_once_and_reused(tmp_path: Path) -> None:
    first = dev_token("--sub", "a", "--role", "admin", "--clinic", "c")
    key = (tmp_path / "var" / "dev-issuer.key").read_bytes()
    second = dev_token("--sub", "a", "--role", "admin", "--clinic", "c")
    assert (tmp_path / "var" / "dev-issuer.key").read_bytes() == key
    assert jwt.get_unverified_header(first)["kid"] == jwt.get_unverified_header(second)["kid"]


@pytest.mark.parametrize("args, message", [
    (["--sub", "a", "--role", "superuser"], "error: role: unknown superuser; known: clinician, "
                                            "auditor, researcher, admin"),
    (["--sub", "a", "--ttl", "0"], None),
], ids=["unknown-role", "zero-ttl"])
def test_dev_token_usage_errors_exit_2(args: list[str], message: str | None) -> None:
    result = runner.invoke(app, ["dev-token", *args])
    assert result.exit_code == 2
    if message:
        assert result.stderr.strip() == message


def test_dev_token_refuses_when_an_issuer_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_AUTH_ISSUER", "https://login.example/realms/x")
    result = runner.invoke(app, ["dev-token", "--sub", "a"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: OUTCOMES_AUTH_ISSUER is set: tokens come from "
                                     "that issuer, not dev-token")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_development_mode_refuses_a_non_loopback_host(host: str) -> None:
    result = runner.invoke(app, ["serve", "--host", host])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: development mode (no OUTCOMES_AUTH_ISSUER) serves on loopback only, not "
        f"{host}: set OUTCOMES_AUTH_ISSUER for production or serve on 127.0.0.1"]


@pytest.mark.parametrize("env, message", [
    ({"OUTCOMES_AUTH_ISSUER": "https://idp.example/"},
     "error: OUTCOMES_AUTH_AUDIENCE is required when OUTCOMES_AUTH_ISSUER is set"),
    ({"OUTCOMES_AUTH_ISSUER": "https://idp.example/", "OUTCOMES_AUTH_AUDIENCE": "api"},
     "error: give exactly one of OUTCOMES_AUTH_JWKS_URL or OUTCOMES_AUTH_JWKS_FILE when "
     "OUTCOMES_AUTH_ISSUER is set"),
], ids=["no-audience", "no-jwks"])
def test_production_mode_fails_fast_on_incomplete_settings(
        env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [message]


def test_an_import_records_cli_and_the_os_user(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCOMES_PSEUDONYM_KEY", "cli-test-key-0123456789")
    result = runner.invoke(app, ["import", "fhir", str(FHIR), "--clinic", "c", "--json"])
    assert result.exit_code == 0, result.output
    services = build(Settings())
    try:
        events = services.read_models.views["audit"]
        services.read_models.catch_up(["audit"])
        items, _ = events.trail(limit=500)
    finally:
        services.close()
    assert items and {e["recorded_by"] for e in items} == {f"cli:{getpass.getuser()}"}
