"""/docs and /redoc work without a network: their pages load Swagger UI and ReDoc from the
service itself (the fastapi-offline package), never from a CDN."""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize(("page", "script"), [("/docs", "swagger-ui-bundle.js"),
                                              ("/redoc", "redoc.standalone.js")])
def test_the_docs_pages_use_only_assets_the_service_serves(client, page, script):
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "://" not in html  # no absolute URL at all: nothing to fetch from elsewhere
    assets = ASSET.findall(html)
    assert any(a.endswith(script) for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset


def test_swagger_ui_has_no_online_validator(client):
    assert '"validatorUrl": null' in client.get("/docs").text


def test_the_pages_point_at_the_service_own_openapi_document(client):
    assert "url: '/openapi.json'" in client.get("/docs").text
    assert 'spec-url="/openapi.json"' in client.get("/redoc").text
