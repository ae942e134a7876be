"""Signed checkpoints: the C2SP signed-note / tlog-checkpoint text, Ed25519 signatures, private
file modes, the newest file, and the periodic writer (only when a tree grew, one writer)."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trust_helpers import Ledger, fill

from bootstrap import build
from trust import checkpoints
from trust.chain import Chain
from trust.checkpoints import BadSignature, checkpoint_if_grown, read_checkpoint, write_checkpoint

pytestmark = pytest.mark.file_store
MOMENT = datetime(2026, 12, 1, 14, 0, 0, 123456, tzinfo=UTC)


def mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_checkpoint_is_a_signed_note_of_the_three_trees(ledger: Ledger) -> None:
    fill(ledger.settings, episodes=1)
    services = build(ledger.settings)
    try:
        head = Chain.of(services.app.recorder).head()
        path = write_checkpoint(ledger.settings, services, now=lambda: MOMENT)
    finally:
        services.close()
    text = path.read_text()
    body, signature = text.split("\n\n")
    assert body.split("\n") == [
        "outcome-ledger/checkpoint", str(head.size), base64.b64encode(head.root).decode(),
        "store rescoring-runs 0 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "store access-log 0 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "time 2026-12-01T14:00:00.123456Z"]
    dash, name, encoded = signature.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "outcome-ledger")
    key = checkpoints.signing_key(ledger.settings)
    raw = base64.b64decode(encoded)
    assert raw[:4] == checkpoints.key_hash("outcome-ledger", key.public_key())
    key.public_key().verify(raw[4:], (body + "\n").encode())  # raises when it does not verify
    parsed = read_checkpoint(path, key.public_key())
    assert parsed.heads["outcomes"].size == head.size and parsed.heads["outcomes"].root == head.root
    assert parsed.time == MOMENT and parsed.text == text
    assert path.name == f"checkpoint-20261201T140000123456Z-{head.size}.txt"


def test_files_are_private(ledger: Ledger) -> None:
    services = build(ledger.settings)
    try:
        path = write_checkpoint(ledger.settings, services)
    finally:
        services.close()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(ledger.settings.checkpoint_key_path()) == 0o600
    assert ledger.settings.checkpoint_folder() == path.parent


def test_the_verifier_key_round_trips_and_checks_its_hash(ledger: Ledger) -> None:
    text = checkpoints.public_key(ledger.settings)
    name, key = checkpoints.parse_verifier_key(text)
    assert name == "outcome-ledger"
    assert key.public_bytes_raw() == checkpoints.signing_key(
        ledger.settings).public_key().public_bytes_raw()
    tampered = text.split("+")
    tampered[1] = "00000000"
    with pytest.raises(ValueError, match="hash does not match"):
        checkpoints.parse_verifier_key("+".join(tampered))


def test_another_key_or_a_changed_line_is_a_bad_signature(ledger: Ledger) -> None:
    key = Ed25519PrivateKey.generate()
    services = build(ledger.settings)
    try:
        heads = {"outcomes": Chain.of(services.app.recorder).head()}
    finally:
        services.close()
    note = checkpoints.sign(checkpoints.note_text(heads, MOMENT), key)
    assert checkpoints.parse(note, key.public_key()).time == MOMENT
    with pytest.raises(BadSignature, match="another key"):
        checkpoints.parse(note, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(BadSignature, match="changed after signing"):
        checkpoints.parse(note.replace("time 2026", "time 2025"), key.public_key())
    with pytest.raises(BadSignature, match="not a signed note"):
        checkpoints.parse("outcome-ledger/checkpoint\n1\n", key.public_key())


def test_the_periodic_writer_writes_only_when_a_tree_grew(ledger: Ledger) -> None:
    services = build(ledger.settings)
    try:
        first = checkpoint_if_grown(ledger.settings, services)
        assert first is not None  # none before: the first is written
        assert checkpoint_if_grown(ledger.settings, services) is None
        services.app.register_criteria(criteria_id="c-1", base="acnp2006", params={},
                                       source="s", recorded_by="u")
        second = checkpoint_if_grown(ledger.settings, services)
        assert second is not None and second != first
        assert checkpoints.latest_checkpoint(ledger.settings) == second
    finally:
        services.close()


def test_one_writer_at_a_time(ledger: Ledger) -> None:
    import fcntl

    services = build(ledger.settings)
    folder = ledger.settings.checkpoint_folder()
    folder.mkdir(mode=0o700, parents=True)
    fd = os.open(folder / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker is writing
        assert checkpoint_if_grown(ledger.settings, services) is None
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert checkpoint_if_grown(ledger.settings, services) is not None
    finally:
        os.close(fd)
        services.close()


def test_the_follower_stops_cleanly(ledger: Ledger) -> None:
    import threading

    settings = ledger.settings.model_copy(update={"checkpoint_interval": 3600})
    services = build(settings)
    try:
        stop = checkpoints.follow(settings, services)
        assert any(t.name == "checkpoints" for t in threading.enumerate())
        stop()
        assert not any(t.name == "checkpoints" and t.is_alive() for t in threading.enumerate())
    finally:
        services.close()
