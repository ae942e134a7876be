"""The tampering matrix (issue 11): each kind of direct edit of the real tables (sqlite3 on the
SQLite file, SQL on PostgreSQL) is named by ``verify`` with its kind and first position; an
untouched store verifies."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trust_helpers import Ledger, fill

from bootstrap import build
from trust import checkpoints
from trust.checkpoints import write_checkpoint
from trust.verify import Fault, verify

pytestmark = pytest.mark.file_store
EVENTS = 15  # 3 episodes: opened, 3 assessments, and a stage change each


@pytest.fixture
def built(ledger: Ledger) -> tuple[Ledger, list[str], Path]:
    """The ledger filled and checkpointed: (ledger, episode ids, checkpoint file)."""
    ids = fill(ledger.settings)
    services = build(ledger.settings)
    try:
        path = write_checkpoint(ledger.settings, services)
    finally:
        services.close()
    assert ledger.positions() == list(range(1, EVENTS + 1))
    return ledger, ids, path


def first(ledger: Ledger, **kwargs: object) -> Fault:
    report = verify(ledger.settings, **kwargs)  # type: ignore[arg-type]
    assert not report.ok
    return report.faults[0]


def found(ledger: Ledger) -> list[tuple[str, int | None]]:
    """(kind, position) of every fault but the read models' (which, built from the events
    before the edit, rightly disagree with the edited ones too)."""
    return [(f.kind, f.position) for f in verify(ledger.settings).faults if f.kind != "read-model"]


def test_an_untouched_store_verifies(built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, path = built
    report = verify(ledger.settings, deep=True)
    assert report.ok, report.faults
    assert report.checkpoint == path
    assert report.heads["outcomes"].size == EVENTS
    assert report.heads["outcomes"].last_position == EVENTS
    assert report.heads["access-log"].size == 0


def test_an_edited_state_byte_is_edited_at_its_position(built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, _ = built
    events, pos = ledger.table("events"), ledger.pos
    (state,), = ledger.execute(f"SELECT state FROM {events} WHERE {pos} = ?", (6,))
    changed = bytearray(state)
    changed[len(changed) // 2] ^= 0x01
    ledger.execute(f"UPDATE {events} SET state = ? WHERE {pos} = ?", (bytes(changed), 6))
    fault = first(ledger)
    assert (fault.store, fault.kind, fault.position) == ("outcomes", "edited", 6)


def test_a_middle_event_deleted_is_deleted(built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, _ = built
    ledger.execute(f"DELETE FROM {ledger.table('events')} WHERE {ledger.pos} = ?", (5,))
    assert found(ledger) == [("deleted", 5)]


def test_a_middle_event_deleted_with_its_link_is_deleted(
        built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, _ = built
    ledger.execute(f"DELETE FROM {ledger.table('events')} WHERE {ledger.pos} = ?", (5,))
    ledger.execute(f"DELETE FROM {ledger.table('chain')} WHERE position = ?", (5,))
    fault = first(ledger)
    assert (fault.kind, fault.position) == ("deleted", 5)


def test_the_last_events_deleted_are_truncated_against_the_checkpoint(
        built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, _ = built
    ledger.execute(f"DELETE FROM {ledger.table('events')} WHERE {ledger.pos} > ?", (9,))
    ledger.execute(f"DELETE FROM {ledger.table('chain')} WHERE position > ?", (9,))
    assert found(ledger) == [("truncated", 10)]
    detail = verify(ledger.settings).faults[0].detail
    assert "9 events" in detail and "covered 15" in detail


def test_the_last_events_deleted_without_their_links_are_truncated(
        built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, _ = built
    ledger.execute(f"DELETE FROM {ledger.table('events')} WHERE {ledger.pos} > ?", (10,))
    fault = first(ledger)
    assert (fault.kind, fault.position) == ("truncated", 11)


def test_two_rows_swapped_are_reordered(built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, _ = built
    events, pos = ledger.table("events"), ledger.pos
    for old, new in ((3, -1), (8, 3), (-1, 8)):
        ledger.execute(f"UPDATE {events} SET {pos} = ? WHERE {pos} = ?", (new, old))
    assert found(ledger) == [("reordered", 3), ("reordered", 8)]
    assert first(ledger).detail == "holds the event chained at position 8"


def test_a_forged_row_is_inserted(built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, _ = built
    events, pos = ledger.table("events"), ledger.pos
    forged = "0f0f0f0f0f0f4f0f8f0f0f0f0f0f0f0f"
    ledger.execute(f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                   f"SELECT ?, 1, topic, state FROM {events} WHERE {pos} = 1", (forged,))
    (position,), = ledger.execute(f"SELECT {pos} FROM {events} WHERE originator_id = ?",
                                  (forged if not ledger.postgres else
                                   "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f",))
    assert position > EVENTS
    fault = first(ledger)
    assert (fault.kind, fault.position) == ("inserted", position)


def test_a_changed_checkpoint_root_is_a_bad_signature(
        built: tuple[Ledger, list[str], Path]) -> None:
    ledger, _, path = built
    lines = path.read_text().split("\n")
    lines[2] = "A" + lines[2][1:] if lines[2][0] != "A" else "B" + lines[2][1:]
    path.write_text("\n".join(lines))
    fault = first(ledger)
    assert (fault.kind, fault.position, fault.store) == ("bad-signature", None, "checkpoint")


def test_a_checkpoint_signed_by_another_key_is_a_bad_signature(
        built: tuple[Ledger, list[str], Path], tmp_path: Path) -> None:
    ledger, _, path = built
    body = path.read_text().rpartition("\n\n")[0] + "\n"
    other = tmp_path / "other.txt"
    other.write_text(checkpoints.sign(body, Ed25519PrivateKey.generate()))
    fault = first(ledger, checkpoint=other)
    assert fault.kind == "bad-signature"
    assert "another key" in fault.detail


def test_a_rewritten_chain_after_an_edit_is_a_checkpoint_mismatch(
        built: tuple[Ledger, list[str], Path]) -> None:
    """An intruder who edits an event and recomputes every link from there on leaves a chain
    that agrees with itself: only the checkpoint's root shows it."""
    from trust.chain import Chain, links_for

    ledger, _, _ = built
    events, chain, pos = ledger.table("events"), ledger.table("chain"), ledger.pos
    ledger.execute(f"UPDATE {events} SET topic = topic || 'x' WHERE {pos} = ?", (7,))
    services = build(ledger.settings)
    try:
        rows = list(Chain.of(services.app.recorder).events())
    finally:
        services.close()
    ledger.execute(f"DELETE FROM {chain}")
    for link in links_for(None, rows):
        ledger.execute(f"INSERT INTO {chain} VALUES (?, ?, ?, ?)",
                       (link.position, link.prev_position, link.event_hash, link.content_digest))
    assert found(ledger) == [("checkpoint-mismatch", None)]


def test_a_changed_read_model_row_is_a_read_model_fault(
        built: tuple[Ledger, list[str], Path]) -> None:
    ledger, ids, _ = built
    services = build(ledger.settings)
    try:
        with services.read_models.episodes.writing() as cursor:
            cursor.execute("UPDATE episodes SET stage = ? WHERE episode_id = ?",
                           ("recovery", ids[1]))
    finally:
        services.close()
    (opened,), = ledger.execute(
        f"SELECT min({ledger.pos}) FROM {ledger.table('events')} WHERE originator_id = ?",
        (ids[1] if ledger.postgres else ids[1].replace("-", ""),))
    fault = first(ledger, deep=True)
    assert (fault.store, fault.kind, fault.position) == ("outcomes", "read-model", opened)
    assert fault.detail.startswith(f"view episodes, table episodes: the rows of episode {ids[1]}")
