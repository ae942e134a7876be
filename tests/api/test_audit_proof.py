"""GET /audit/proof: an event's inclusion proof against the latest signed checkpoint, checked
here with the RFC 9162 verifier and the checkpoint's signature; clinic isolation; 404/409/422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_helpers import PROBLEM_TYPE, V1, Api, running, store_settings
from local_issuer import bearer

from bootstrap import Settings
from trust import checkpoints, merkle
from trust.chain import leaf_of


@pytest.fixture
def settings(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return store_settings(store, request, tmp_path, checkpoint_dir=tmp_path / "checkpoints",
                          checkpoint_key_file=tmp_path / "signing.key", checkpoint_interval=0)


@pytest.fixture
def world(settings: Settings) -> Any:
    with running(settings) as client:
        api = Api(client)
        mine = api.open(clinic_id="clinic-a", patient_ref="pseudo-a")
        api.record_all(mine, V1[:4])
        other = api.open(clinic_id="clinic-b", patient_ref="pseudo-b")
        yield api, client, settings, mine, other


def checkpoint(client: Any, settings: Settings) -> Path:
    return checkpoints.write_checkpoint(settings, client.app.state.services)


def positions(api: Api, episode_id: str) -> list[int]:
    return [e["position"] for e in api.get(f"/episodes/{episode_id}/audit")["items"]]


def test_the_proof_verifies_against_the_signed_checkpoint(world: Any) -> None:
    api, client, settings, mine, _ = world
    path = checkpoint(client, settings)
    position = positions(api, mine)[2]
    body = api.get("/audit/proof", position=position)
    assert body["store"] == "outcomes" and body["position"] == position
    assert body["leaf_index"] == position - 1  # no gaps in a fresh store
    assert body["leaf_hash"] == leaf_of(position, bytes.fromhex(body["event_hash"])).hex()
    assert body["checkpoint"] == path.read_text()
    signed = checkpoints.parse(body["checkpoint"],
                               checkpoints.signing_key(settings).public_key())
    assert signed.heads["outcomes"].root.hex() == body["root"]
    assert signed.heads["outcomes"].size == body["tree_size"] == api.position()
    assert merkle.verify_inclusion(bytes.fromhex(body["leaf_hash"]), body["leaf_index"],
                                   body["tree_size"], [bytes.fromhex(p) for p in body["proof"]],
                                   bytes.fromhex(body["root"]))
    assert len(body["proof"]) == (body["tree_size"] - 1).bit_length()


def test_an_event_after_the_checkpoint_is_409_not_checkpointed(world: Any) -> None:
    api, client, settings, mine, _ = world
    response = client.get("/audit/proof", params={"position": 1})
    assert response.status_code == 409
    assert response.json()["code"] == "not-checkpointed"
    assert response.json()["title"] == "Not yet in a signed checkpoint"  # not the episode's state
    checkpoint(client, settings)
    api.record(mine, "2026-02-02", 6)
    late = positions(api, mine)[-1]
    response = client.get("/audit/proof", params={"position": late})
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.json()["code"] == "not-checkpointed"


def test_another_clinics_event_and_an_empty_position_are_the_same_404(world: Any) -> None:
    api, client, settings, _, other = world
    checkpoint(client, settings)
    theirs = positions(api, other)[0]
    only_a = bearer(roles=["auditor"], clinics=["clinic-a"])
    hidden = client.get("/audit/proof", params={"position": theirs}, headers=only_a)
    empty = client.get("/audit/proof", params={"position": 999}, headers=only_a)
    assert hidden.status_code == empty.status_code == 404
    assert hidden.json()["code"] == empty.json()["code"] == "not-found"
    assert client.get("/audit/proof", params={"position": theirs}).status_code == 200


@pytest.mark.parametrize("params", [{}, {"position": 0}, {"position": "x"},
                                    {"position": 1, "store": "nope"}])
def test_bad_queries_are_422(world: Any, params: dict[str, Any]) -> None:
    _, client, *_ = world
    response = client.get("/audit/proof", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_TYPE


def test_the_access_log_store_has_proofs_too(world: Any) -> None:
    api, client, settings, _, _ = world
    checkpoint(client, settings)
    body = api.get("/audit/proof", position=1, store="access-log")
    assert (body["store"], body["leaf_index"]) == ("access-log", 0)
    assert merkle.verify_inclusion(bytes.fromhex(body["leaf_hash"]), 0, body["tree_size"],
                                   [bytes.fromhex(p) for p in body["proof"]],
                                   bytes.fromhex(body["root"]))
