"""A streaming-replication standby promoted after the primary stops: with the multi-host
setting (``OUTCOMES_POSTGRES_HOST=primary,standby``) the running service writes to the new
primary, and every write acknowledged before or after is there (issue 10, "Faults").

The primary stops with a fast shutdown, which sends every WAL record to the connected standby
before it ends; an abrupt loss of the primary needs synchronous replication for the same
guarantee (docs/adr/0021)."""

from __future__ import annotations

import time

import pytest
from fault_harness import Lab, Load, acknowledged_are_stored_once, open_episodes, wait_until
from postgres import PostgresLedger, PostgresServer

pytestmark = [pytest.mark.faults, pytest.mark.postgres]


def test_the_service_writes_to_the_promoted_standby_and_loses_nothing(lab: Lab) -> None:
    primary = lab.cluster()
    ledger = lab.ledger(primary)
    standby = lab.standby(primary)
    store = {**ledger.environ(), "OUTCOMES_POSTGRES_HOST": f"{primary.host},{standby.host}",
             "OUTCOMES_POSTGRES_PORT": f"{primary.port},{standby.port}"}
    service = lab.service(store, workers=2, OUTCOMES_PROJECTIONS="runners",
                          OUTCOMES_POSTGRES_CONNECT_TIMEOUT="2")
    load = Load(service.url, open_episodes(service.url, 8), threads=4).start()
    wait_until(lambda: len(load.acked) >= 50, 60, "no load before the failover")

    primary.stop("fast")
    standby.promote()
    promoted_at = time.monotonic()
    wait_until(lambda: load.acked_since(promoted_at) >= 50, 60,
               f"no write reached the new primary: {load.statuses()}")
    load.stop()

    statuses = load.statuses()
    assert not [s for s in statuses if isinstance(s, int) and s >= 500 and s != 503], statuses
    new_primary = PostgresLedger(PostgresServer(standby.host, standby.port, standby.user),
                                 ledger.dbname, ledger.schema)
    acknowledged_are_stored_once(load, new_primary.environ())
