"""The browser-test toolchain end to end: a real ``outcomes serve`` on a loopback port
(tests/support/served.py), Debian's Chromium through Playwright opening ``/docs`` (Swagger UI,
its assets served by the service itself: no network), and axe-core run on the rendered page.

The violations are Swagger UI's own (fastapi-offline's bundle), recorded as observed: the test
proves axe runs in this browser, not that /docs is accessible; the /ui/ pages must have none."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_helpers import axe_violations
from playwright.sync_api import Page, expect
from served import serving

pytestmark = pytest.mark.ui

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# axe-core 4.14.1 on fastapi-offline's Swagger UI in Debian's Chromium 156 (ids only: the node
# counts follow the schema's size)
SWAGGER_UI_VIOLATIONS = ["color-contrast", "heading-order", "html-has-lang", "landmark-one-main",
                         "nested-interactive", "region"]


def test_chromium_renders_the_offline_docs_and_axe_runs_on_them(page: Page, tmp_path: Path) -> None:
    with serving(tmp_path, {"OUTCOMES_OVERDUE_SWEEP_INTERVAL": "0"}, workers=1) as server:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as reply:
            schema = json.load(reply)
        operations = sum(1 for item in schema["paths"].values() for method in item if method in METHODS)
        hosts: set[str] = set()
        page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))

        response = page.goto(f"{base}/docs")
        assert response is not None and response.status == 200
        expect(page).to_have_title("Outcome Ledger - Swagger UI")
        # Swagger UI ran in the browser: it fetched the schema and drew one block per operation
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Outcome Ledger")
        expect(page.locator(".opblock")).to_have_count(operations, timeout=15_000)
        violations = axe_violations(page)

    assert operations > 10
    assert hosts == {f"127.0.0.1:{server.port}"}  # every request, scripts included, to the service
    assert sorted(v["id"] for v in violations) == SWAGGER_UI_VIOLATIONS
