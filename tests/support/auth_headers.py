"""The one hook through which API tests that exercise the whole surface (the schemathesis run) send
their credentials.

``auth_headers()`` returns the headers every generated request carries. Until authentication lands
it is ``{}`` unless ``OUTCOMES_TEST_TOKEN`` is set, in which case it is
``{"Authorization": "Bearer <token>"}``. When authentication merges, this function is the place to
mint a token from the test issuer (all four roles, the clinics the run uses) instead.
"""

from __future__ import annotations

import os

TOKEN_VARIABLE = "OUTCOMES_TEST_TOKEN"


def auth_headers() -> dict[str, str]:
    """Headers naming the caller: ``{"Authorization": "Bearer <token>"}`` from
    ``$OUTCOMES_TEST_TOKEN`` (a bare JWT), else ``{}`` (today's app has no authentication)."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}
