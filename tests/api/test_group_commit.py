"""Group commit of the access log (``api.access.GroupCommit``): concurrent requests' records
share one transaction, and each waiter is answered only once its record is stored (durable
before acknowledged); when a batch's transaction fails, each record is appended alone, so only
one that cannot be stored fails its waiter.
On each store (``settings``: the ``store`` fixture, tests/conftest.py). Nothing here is timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import NOW
from eventsourcing import persistence

from api.access import GroupCommit
from bootstrap import Services, Settings, build
from domain.access import Access


def access(n: int) -> Access:
    """The access record of request number ``n`` (its request id ``req-<n>``)."""
    return Access(sub="dr-lee", authenticated=True, roles=("clinician",), clinics=("clinic-a",),
                  clinic_id="clinic-a", method="GET", route="/criteria", episode_id=None,
                  run_id=None, assessment_id=None, status=200, at=NOW, request_id=f"req-{n}",
                  client="10.1.2.3")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build(settings)
    yield built
    built.close()


def stored_ids(services: Services) -> list[str]:
    recorder, mapper = services.access_log.recorder, services.access_log.mapper
    return [mapper.to_domain_event(n).request_id
            for n in recorder.select_notifications(start=1, limit=10_000)]


class Gate:
    """Wraps ``AccessLog.record``/``record_all``: the first append waits until ``open()``, so
    the records sent meanwhile queue up for the next batch; every batch's size, and the store's
    last position at the moment each waiter is answered, are kept."""

    def __init__(self, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = services.access_log
        self.batches: list[int] = []
        self.opened = threading.Event()
        self.entered = threading.Event()
        record, record_all = self.log.record, self.log.record_all

        def gated_record(one: Access) -> int:
            self.entered.set()
            self.opened.wait(30)
            self.batches.append(1)
            return record(one)

        def counted_record_all(many: list[Access]) -> list[int]:
            self.batches.append(len(many))
            return record_all(many)
        monkeypatch.setattr(self.log, "record", gated_record)
        monkeypatch.setattr(self.log, "record_all", counted_record_all)

    def last(self) -> int:
        return self.log.recorder.max_notification_id() or 0


def test_concurrent_records_share_one_transaction_each_stored_before_answered(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(services, monkeypatch)
    commit = GroupCommit(services.access_log)
    answered: dict[int, tuple[int, int]] = {}  # n: (position, last stored when answered)

    async def one(n: int) -> None:
        position = await commit.record(access(n))
        answered[n] = (position, gate.last())

    async def scenario() -> None:
        first = asyncio.create_task(one(0))
        while not gate.entered.is_set():  # the writer holds record 0
            await asyncio.sleep(0)
        rest = [asyncio.create_task(one(n)) for n in range(1, 11)]
        await asyncio.sleep(0)  # every one of them queued
        gate.opened.set()
        await asyncio.gather(first, *rest)

    asyncio.run(scenario())
    assert gate.batches == [1, 10]  # one transaction for the ten that waited together
    assert sorted(position for position, _ in answered.values()) == list(range(1, 12))
    assert all(position <= last for position, last in answered.values())  # durable first
    assert stored_ids(services) == [f"req-{n}" for n in range(11)]  # in the order queued


def test_a_failed_batch_is_appended_one_by_one_and_only_a_bad_record_fails(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """One record that cannot be stored (reproduced: it failed the whole batch, every request
    of it answered 500) fails only its own request; the others are stored and answered."""
    gate = Gate(services, monkeypatch)
    commit = GroupCommit(services.access_log)
    real_record = services.access_log.record

    def record(one: Access) -> int:
        if one.request_id == "req-2":
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_record(one)

    def record_all(many: list[Access]) -> list[int]:
        gate.batches.append(len(many))
        if any(one.request_id == "req-2" for one in many):  # fails the batch's transaction
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_all(many)
    real_all = services.access_log.record_all
    monkeypatch.setattr(services.access_log, "record", record)
    monkeypatch.setattr(services.access_log, "record_all", record_all)

    async def scenario() -> list[Any]:
        first = asyncio.create_task(commit.record(access(0)))
        await asyncio.sleep(0)  # the writer takes record 0 alone
        while not stored_ids(services):
            await asyncio.sleep(0.01)
        rest = [asyncio.create_task(commit.record(access(n))) for n in range(1, 4)]
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        outcomes.append(await commit.record(access(4)))  # the writer carries on
        return outcomes

    gate.opened.set()
    outcomes = asyncio.run(scenario())
    assert outcomes[0] == 1
    assert isinstance(outcomes[2], UnicodeEncodeError)
    assert [outcomes[1], outcomes[3], outcomes[4]] == [2, 3, 4]
    assert stored_ids(services) == ["req-0", "req-1", "req-3", "req-4"]
    # record 0 alone; the three that waited together as one transaction, which failed; then
    # req-1 and req-3 alone (req-2 fails before any append); then record 4
    assert gate.batches == [1, 3, 1, 1, 1]


def test_a_store_that_fails_fails_every_waiter_of_its_batch_and_stores_none(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(services, monkeypatch)
    commit = GroupCommit(services.access_log)
    real_all, real_one = services.access_log.record_all, services.access_log.record
    failing = {"on": True}

    def record_all(many: list[Access]) -> list[int]:
        if failing["on"]:
            raise persistence.OperationalError("database is locked")
        return real_all(many)

    def record(one: Access) -> int:
        if failing["on"] and one.request_id != "req-0":
            raise persistence.OperationalError("database is locked")
        return real_one(one)
    monkeypatch.setattr(services.access_log, "record_all", record_all)
    monkeypatch.setattr(services.access_log, "record", record)

    async def scenario() -> list[Any]:
        first = asyncio.create_task(commit.record(access(0)))
        await asyncio.sleep(0)
        while not stored_ids(services):
            await asyncio.sleep(0.01)
        rest = [asyncio.create_task(commit.record(access(n))) for n in range(1, 4)]
        outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
        failing["on"] = False
        outcomes.append(await commit.record(access(4)))  # the writer carries on
        return outcomes

    gate.opened.set()
    outcomes = asyncio.run(scenario())
    assert outcomes[0] == 1
    assert [type(o) for o in outcomes[1:4]] == [persistence.OperationalError] * 3
    assert stored_ids(services) == ["req-0", "req-4"]


def test_a_cancelled_waiter_leaves_the_writer_answering_the_others(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(services, monkeypatch)
    commit = GroupCommit(services.access_log)

    async def scenario() -> list[int]:
        first = asyncio.create_task(commit.record(access(0)))
        while not gate.entered.is_set():
            await asyncio.sleep(0)
        gone = asyncio.create_task(commit.record(access(1)))
        kept = asyncio.create_task(commit.record(access(2)))
        await asyncio.sleep(0)
        gone.cancel()  # its client went away while it waited
        gate.opened.set()
        return [await first, await kept, await commit.record(access(3))]

    assert asyncio.run(scenario()) == [1, 3, 4]
    assert stored_ids(services) == ["req-0", "req-1", "req-2", "req-3"]  # recorded all the same


def test_the_writer_ends_when_idle_and_starts_again(services: Services) -> None:
    commit = GroupCommit(services.access_log, idle=0.01)

    async def record(n: int) -> int:
        return await commit.record(access(n))

    assert asyncio.run(record(0)) == 1
    writer = commit._writer
    assert writer is not None
    writer.join(30)
    assert not writer.is_alive() and commit._writer is None
    assert asyncio.run(record(1)) == 2
    assert stored_ids(services) == ["req-0", "req-1"]
