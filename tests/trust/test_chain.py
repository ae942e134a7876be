"""The hash chain: written with every append on the three stores, in the append's transaction
(a failed append leaves no link), indifferent to position gaps, and chained once for a store
written before the chain existed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from trust_helpers import Ledger, fill

from application.outcomes import OutcomesApplication
from bootstrap import Settings, build, init_store
from trust.chain import (
    GENESIS,
    Chain,
    ChainedPOPOApplicationRecorder,
    NotChained,
    RawEvent,
    content_digest,
    event_hash,
    leaf_of,
    links_for,
)
from trust.merkle import root
from trust.verify import verify

pytestmark = pytest.mark.file_store


def test_every_store_of_the_settings_is_chained(ledger: Ledger) -> None:
    services = build(ledger.settings)
    try:
        for app in (services.app, services.runs, services.access_log):
            assert Chain.of(app.recorder).head().size == 0
        kind = "Postgres" if ledger.postgres else "SQLite"
        assert type(services.app.recorder).__name__ == f"Chained{kind}ApplicationRecorder"
        assert services.store.kind == ledger.settings.store
    finally:
        services.close()


def test_the_memory_store_is_chained_too() -> None:
    services = build(Settings(store="memory"))
    try:
        assert isinstance(services.app.recorder, ChainedPOPOApplicationRecorder)
        services.app.register_criteria(criteria_id="c-1", base="acnp2006", params={},
                                       source="s", recorded_by="u")
        chain = Chain.of(services.app.recorder)
        (event,) = list(chain.events())
        (link,) = list(chain.links())
        assert link.position == event.position == 1 and link.prev_position == 0
        assert link.event_hash == event_hash(GENESIS, 1, 0, event.originator_id, 1,
                                             event.topic, event.state)
    finally:
        services.close()


def test_a_recorder_without_chain_is_refused() -> None:
    with pytest.raises(NotChained, match="POPOApplicationRecorder keeps no hash chain"):
        Chain.of(OutcomesApplication({}).recorder)


def test_each_link_hashes_its_event_and_the_link_before(ledger: Ledger) -> None:
    fill(ledger.settings, episodes=2)
    services = build(ledger.settings)
    try:
        chain = Chain.of(services.app.recorder)
        events, links = list(chain.events()), list(chain.links())
        assert [k.position for k in links] == [e.position for e in events] == ledger.positions()
        assert links == links_for(None, events)
        second = links[1]
        assert second.prev_position == links[0].position
        assert second.content_digest == content_digest(
            events[1].originator_id, events[1].originator_version, events[1].topic,
            events[1].state)
        head = chain.head()
        assert head.size == len(events) and head.last_position == events[-1].position
        assert head.root == root([leaf_of(k.position, k.event_hash) for k in links])
        assert chain.leaves(3) == chain.leaves()[:3]
        entry = chain.entry(links[4].position)
        assert entry is not None and (entry.index, entry.prev_position) == (
            4, links[3].position)
        assert chain.entry(10_000) is None
    finally:
        services.close()


def test_a_failed_append_writes_no_link_and_a_gap_breaks_nothing(ledger: Ledger) -> None:
    fill(ledger.settings, episodes=1)
    services = build(ledger.settings)
    try:
        recorder = services.app.recorder
        chain = Chain.of(recorder)
        first = next(chain.events())
        duplicate = StoredEvent(UUID(first.originator_id), first.originator_version, first.topic,
                                first.state)
        fresh = StoredEvent(uuid4(), 1, first.topic, first.state)
        before = list(chain.links())
        with pytest.raises(IntegrityError):
            recorder.insert_events([fresh, duplicate])  # one transaction: neither is stored
        assert list(chain.links()) == before
        (position,) = recorder.insert_events([StoredEvent(uuid4(), 1, first.topic,
                                                          first.state)])
        if ledger.postgres:  # the rolled-back append took sequence values: a gap
            assert position > before[-1].position + 1
        last = list(chain.links())[-1]
        assert (last.position, last.prev_position) == (position, before[-1].position)
    finally:
        services.close()
    assert verify(ledger.settings).ok


def test_an_error_while_linking_stores_neither_the_events_nor_links(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python error after the insert (here: computing the links) rolls the append back. The
    library's PostgreSQL recorder catches it inside its transaction and re-raises it after the
    commit: reproduced, the events were stored without links (verify: "inserted")."""
    fill(ledger.settings, episodes=1)
    services = build(ledger.settings)
    try:
        recorder = services.app.recorder
        chain = Chain.of(recorder)
        first = next(chain.events())
        before_links, before_max = list(chain.links()), recorder.max_notification_id()

        def broken(*_: object) -> None:
            raise RuntimeError("link computation failed")

        monkeypatch.setattr("trust.chain.links_for", broken)
        with pytest.raises(RuntimeError, match="link computation failed"):
            recorder.insert_events([StoredEvent(uuid4(), 1, first.topic, first.state)])
        monkeypatch.undo()
        assert recorder.max_notification_id() == before_max
        assert list(chain.links()) == before_links
    finally:
        services.close()
    assert verify(ledger.settings).ok


def test_a_store_written_before_the_chain_is_chained_once(ledger: Ledger) -> None:
    """Events and no chain (a store of before issue 11): ``db init`` (PostgreSQL) or opening
    (SQLite) chains the backlog, so the old store verifies; later appends extend it."""
    fill(ledger.settings, episodes=2)
    count = len(ledger.positions())
    ledger.execute(f"DROP TABLE {ledger.table('chain')}")
    if ledger.postgres:
        init_store(ledger.settings)
    fill(ledger.settings, episodes=1)
    services = build(ledger.settings)
    try:
        links = list(Chain.of(services.app.recorder).links())
        assert len(links) == len(ledger.positions()) > count
        assert links == links_for(None, list(Chain.of(services.app.recorder).events()))
    finally:
        services.close()
    assert verify(ledger.settings).ok


@pytest.mark.sqlite_only
def test_an_old_sqlite_file_is_chained_when_it_opens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "var" / "outcomes.sqlite"
    path.parent.mkdir()
    old = OutcomesApplication({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(path)})
    old.register_criteria(criteria_id="c-1", base="acnp2006", params={}, source="s",
                          recorded_by="u")
    old.close()
    with sqlite3.connect(path) as conn:
        assert "stored_events_chain" not in {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    settings = Settings(store="sqlite", sqlite_path=path)
    services = build(settings)
    try:
        (link,) = list(Chain.of(services.app.recorder).links())
        assert (link.position, link.prev_position) == (1, 0)
    finally:
        services.close()
    assert verify(settings).ok


class _Appending(Chain):
    """A chain whose events are read before one more append commits, and its links after."""

    def __init__(self, events: list, links: list) -> None:  # type: ignore[type-arg]
        super().__init__(None)
        self._events, self._links, self.reads = events, links, 0

    def link_page(self, after: int, limit: int) -> list:  # type: ignore[type-arg]
        return [k for k in self._links if k.position > after][:limit]

    def events(self, after: int = -(2**62)) -> Iterator[RawEvent]:
        self.reads += 1
        shown = self._events[:-1] if self.reads == 1 else self._events
        return iter([e for e in shown if e.position > after])


def test_an_append_during_verify_is_no_fault() -> None:
    from trust.verify import check_chain

    events = [RawEvent(p, str(uuid4()), 1, "t", b"s") for p in (1, 2, 3)]
    faults, head, _ = check_chain("outcomes", _Appending(events, links_for(None, events)))
    assert faults == []
    assert (head.size, head.last_position) == (3, 3)
