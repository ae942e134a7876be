"""The pages' sign-in settings (OUTCOMES_UI_*) checked at start with errors naming the setting,
and the encrypted session cookie (api.ui.session): unreadable and unchangeable without the
secret, its key derived from it, bounded by the session's end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from local_issuer import auth_settings
from pydantic import ValidationError
from starlette.applications import Starlette

from api import create_app
from api.ui.session import EncryptedSessionMiddleware, session_key
from bootstrap import Settings

SECRET = "a-test-session-secret-of-enough-length-0123456789"


def settings(tmp_path: Path, **fields: object) -> Settings:
    return Settings(**{"persistence": "memory", "sqlite_path": tmp_path / "o.sqlite", **fields})


@pytest.mark.parametrize(("fields", "named"), [
    ({"ui_client_id": "ui"}, "OUTCOMES_UI_CLIENT_ID needs OUTCOMES_AUTH_ISSUER"),
    ({**auth_settings(), "ui_client_id": "ui"}, "OUTCOMES_UI_CLIENT_ID needs OUTCOMES_UI_SESSION_SECRET"),
    ({"ui_session_secret": "short"}, "at least 32 characters"),
    ({"ui_session_secret": SECRET, "ui_session_secret_file": "/x"}, "not both"),
    ({"ui_base_url": "http://outcomes.example.org"}, "OUTCOMES_UI_BASE_URL"),
    ({"ui_base_url": "https://outcomes.example.org/?a=1"}, "OUTCOMES_UI_BASE_URL"),
    ({"ui_base_url": "outcomes.example.org"}, "OUTCOMES_UI_BASE_URL"),
])
def test_incomplete_or_wrong_ui_settings_are_refused_naming_the_setting(tmp_path, fields, named):
    with pytest.raises(ValidationError, match=named):
        settings(tmp_path, **fields)


def test_good_ui_settings_pass_and_the_base_url_loses_its_slash(tmp_path):
    found = settings(tmp_path, **auth_settings(), ui_client_id="ui", ui_session_secret=SECRET,
                     ui_base_url="https://outcomes.example.org/")
    assert found.ui_base_url == "https://outcomes.example.org"
    assert found.ui_session_secret_value() == SECRET.encode()
    local = settings(tmp_path, ui_base_url="http://127.0.0.1:8000")
    assert local.ui_base_url == "http://127.0.0.1:8000"


def test_the_session_secret_file_is_read_and_checked_at_start(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    found = settings(tmp_path, **auth_settings(), ui_client_id="ui", ui_session_secret_file=path)
    assert found.ui_session_secret_value() == SECRET.encode()
    path.write_text("short")
    with pytest.raises(ValueError, match=r"OUTCOMES_UI_SESSION_SECRET_FILE .* at least 32"):
        create_app(found)
    missing = settings(tmp_path, **auth_settings(), ui_client_id="ui",
                       ui_session_secret_file=tmp_path / "absent")
    with pytest.raises(ValueError, match=r"OUTCOMES_UI_SESSION_SECRET_FILE .* cannot be read"):
        create_app(missing)


def middleware(secret: bytes = SECRET.encode(), max_age: int = 3600) -> EncryptedSessionMiddleware:
    return EncryptedSessionMiddleware(Starlette(), secret=secret, secure=lambda _: True,
                                      max_age=max_age)


def test_the_cookie_is_fernet_under_an_hkdf_key_of_the_secret_and_round_trips():
    session = {"token": "eyJhbGciOiJFUzI1NiJ9.payload.sig", "csrf": "c", "exp": time.time() + 60}
    value = middleware().dump(session)
    assert "payload" not in value and "token" not in value
    assert middleware().load(value) == session
    assert json.loads(Fernet(session_key(SECRET.encode())).decrypt(value)) == session
    assert session_key(SECRET.encode()) != session_key(b"another secret of enough length....")
    assert middleware(b"another secret of enough length....").load(value) == {}  # other workers' key


def test_a_changed_forged_or_ended_cookie_is_an_empty_session():
    box = middleware()
    value = box.dump({"token": "t"})
    assert box.load(value[:20] + ("A" if value[20] != "A" else "B") + value[21:]) == {}
    assert box.load("not-a-cookie") == {}
    assert box.load(box.dump({"token": "t", "exp": time.time() - 1})) == {}  # the token ended
    assert box.seconds({"exp": time.time() + 100}) in range(98, 101)
    assert box.seconds({}) == 3600


def test_the_cookie_header_has_its_flags():
    header = middleware().header("v", 60, None)  # type: ignore[arg-type]
    assert header == "outcomes_ui=v; HttpOnly; Max-Age=60; Path=/ui; SameSite=lax; Secure"
