"""Schemathesis against the live app: every operation of the OpenAPI document, with generated
valid and invalid requests (its examples, coverage and fuzzing phases), must answer no 5xx and
nothing the document does not declare (status code, media type, body schema, headers).

The app runs in process over ASGI (``from_asgi``): schemathesis starts its lifespan once, so the
routes, middleware, services and read models are those ``outcomes serve`` runs, on a throwaway
in-memory store with the clock stopped at ``NOW``; no socket, no port to race for. A seeded
episode (the V1 course), a custom criteria set and a finished shadow run give the generated
requests real ids half of the time, so the deep paths answer 200/409 as well as 404.

Bounded and repeatable: ``MAX_EXAMPLES`` per operation and phase, a fixed seed, derandomized,
no example database; the same cases on every run and on every xdist worker. Credentials come
from ``auth_headers()`` (tests/support/auth_headers.py), the one place to plug a token in.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import schemathesis
from api_helpers import V1, fixed_clock, memory_settings
from auth_headers import TOKEN_VARIABLE, auth_headers
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from bootstrap import Services, build
from trust import checkpoints

MAX_EXAMPLES = 25
# positive_data_acceptance is left out: a schema-valid request the clinical rules refuse (an
# unknown criteria set, a discharge before the episode opened) is a 422 by design
# (api.problems: InvalidInputError), so that check would only report the clinical rules.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, negative_data_rejection]

# No background catch-up thread: every read catches its read model up itself (ADR 0007). The
# seeded checkpoint (GET /audit/proof answers 200 for what it covers) goes to a folder of its own.
CHECKPOINTS = Path(tempfile.mkdtemp(prefix="schemathesis-checkpoints-"))
SETTINGS = memory_settings(log_level="WARNING", catch_up_interval=0,
                           checkpoint_dir=CHECKPOINTS / "checkpoints",
                           checkpoint_key_file=CHECKPOINTS / "signing.key")


def _seed(app: Any) -> dict[str, str]:
    """An episode with the V1 course, a custom criteria set and a completed shadow run: the ids
    the generated requests use half of the time."""
    with asgi.get_client(app) as client:  # starts the lifespan the run then shares
        client.headers.update(auth_headers())

        def post(url: str, body: dict[str, Any], status: int) -> dict[str, Any]:
            response = client.post(url, json=body)
            assert response.status_code == status, (url, response.text)
            answer: dict[str, Any] = response.json()
            return answer

        episode = post("/episodes", {"patient_ref": "p-sx", "clinic_id": "clinic-sx",
                                     "opened_on": "2026-01-05"}, 201)["episode_id"]
        for i, (day, total) in enumerate(V1):
            post(f"/episodes/{episode}/assessments",
                 {"instrument": "PHQ-9", "administered_on": day, "total": total,
                  "assessment_id": f"sx-{i}"}, 201)
        post("/criteria", {"base": "frank1991", "id": "clinic-sx-26w", "source": "policy",
                           "params": {"recovery_min_days_from_full_onset": 182}}, 201)
        run = post("/rescorings", {"criteria": "frank1991", "clinic_id": "clinic-sx"}, 202)["run_id"]
        for _ in range(200):
            if client.get(f"/rescorings/{run}").json()["status"] == "completed":
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the seeded shadow run did not complete")
        checkpoints.write_checkpoint(SETTINGS, app.state.services)  # GET /audit/proof: 200
    return {"episode_id": episode, "run_id": run, "criteria_id": "clinic-sx-26w",
            "clinic_id": "clinic-sx", "assessment_id": "sx-3"}


def _schema() -> tuple[schemathesis.BaseSchema, Services]:
    """The document of a freshly built, seeded app, loaded at collection: parametrize needs the
    operations then (``schemathesis.pytest.from_fixture`` would defer this, but 4.32.5's lazy
    schema reads ``Function._nodeid``, which pytest 9 no longer has)."""
    services = build(SETTINGS, clock=fixed_clock)
    app = create_app(SETTINGS, services=services)
    known = _seed(app)
    config = schemathesis.Config.from_dict({
        "seed": 20261201,
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "deterministic": True,
                       "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)

    @schema.hook
    def flatmap_path_parameters(context: schemathesis.HookContext,
                                path_parameters: dict[str, Any] | None,
                                ) -> st.SearchStrategy[dict[str, Any] | None]:
        """The generated path parameters, or the seeded resources' ids in their place."""
        if not path_parameters:
            return st.just(path_parameters)
        seeded = {name: known[name] for name in path_parameters if name in known}
        return st.sampled_from([path_parameters, {**path_parameters, **seeded}])

    @schema.hook
    def after_call(context: schemathesis.HookContext, case: schemathesis.Case,
                   response: schemathesis.Response) -> None:
        ANSWERED[f"{case.method} {case.path}"].add(response.status_code)

    return schema, services


# "METHOD /path" -> the statuses the run got: a run that only met 401s or 404s proves nothing.
ANSWERED: defaultdict[str, set[int]] = defaultdict(set)
schema, SERVICES = _schema()


@pytest.fixture(scope="module", autouse=True)
def _store_dropped() -> Iterator[None]:
    """The lifespan ended and the in-memory store closed once the module has run."""
    yield
    asgi.shutdown_lifespans()
    SERVICES.close()
    shutil.rmtree(CHECKPOINTS, ignore_errors=True)


# The callers the run acts as (one today). The parametrize also gives each operation its own node
# id: without it schemathesis 4.32.5 under pytest 9 names every operation's item alike, and xdist
# then runs only the first operation.
@schema.parametrize()
@pytest.mark.parametrize("headers", [auth_headers()], ids=["caller"])
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_app_answers_as_its_document_says(case: schemathesis.Case,
                                              headers: dict[str, str]) -> None:
    case.call_and_validate(headers=headers, checks=CHECKS)


def test_the_run_got_real_answers():
    # Runs after the generated cases (same module, same worker): every read answered 200 for the
    # seeded resources at least once, and the writes reached the clinic and clinical rules.
    documented = {f"GET {path}" for path, operations in schema.raw_schema["paths"].items()
                  if "get" in operations}
    reads = {operation: ANSWERED[operation] for operation in documented}
    assert len(reads) == 16  # GET /episodes/{episode_id}/alerts is the 16th (ADR 0031)
    assert {operation for operation, statuses in reads.items() if 200 not in statuses} == set()
    # Generated writes name clinics the token does not carry (403) or break a rule (404, 422):
    # they got past authentication; the seeded writes above reached 201 and 202.
    assert {403, 404, 422} <= set().union(*ANSWERED.values())


def test_auth_headers_send_the_token_from_the_environment(monkeypatch):
    monkeypatch.setenv(TOKEN_VARIABLE, " a.b.c ")
    assert auth_headers() == {"Authorization": "Bearer a.b.c"}
    monkeypatch.delenv(TOKEN_VARIABLE)
    token = auth_headers()["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims["roles"]) == {"clinician", "auditor", "researcher", "admin"}
    assert "clinic-sx" in claims["clinics"]
