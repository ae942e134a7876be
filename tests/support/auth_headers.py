"""The one hook through which API tests that exercise the whole surface (the schemathesis run) send
their credentials.

``auth_headers()`` returns the headers every generated request carries: a bearer token of the
local test issuer (``local_issuer``: all four roles, every test clinic and the schemathesis run's
``clinic-sx``), or ``{"Authorization": "Bearer <token>"}`` from ``OUTCOMES_TEST_TOKEN`` when set.
"""

from __future__ import annotations

import os

TOKEN_VARIABLE = "OUTCOMES_TEST_TOKEN"


def auth_headers() -> dict[str, str]:
    """Headers naming the caller: ``{"Authorization": "Bearer <token>"}`` from
    ``$OUTCOMES_TEST_TOKEN`` (a bare JWT), else a token minted by the local test issuer."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if token:
        return {"Authorization": f"Bearer {token}"}
    from local_issuer import CLINICS, bearer

    return bearer(clinics=[*CLINICS, "clinic-sx"])
