"""The fault harness itself, on what exists without the PostgreSQL service: a cluster keeps an
acknowledged write through a crash-like stop, a standby streams, refuses writes, and once the
primary stops and it is promoted takes them, a multi-host connection finds whichever is the
primary, and a server process is killed with its group."""

from __future__ import annotations

import socket
import time

import psycopg
import pytest
from fault_harness import (
    Lab,
    Load,
    Process,
    Service,
    acknowledged_are_stored_once,
    client,
    open_episodes,
    service_environ,
)
from pg_cluster import Cluster

pytestmark = pytest.mark.faults


def _connect(cluster: Cluster) -> psycopg.Connection:
    return psycopg.connect(cluster.dsn(), autocommit=True, connect_timeout=5)


def _multi_host(*clusters: Cluster) -> str:
    hosts = ",".join(c.host for c in clusters)
    ports = ",".join(str(c.port) for c in clusters)
    return (f"host={hosts} port={ports} user=postgres dbname=postgres "
            "target_session_attrs=read-write connect_timeout=5")


def test_an_acknowledged_write_survives_an_immediate_stop(lab: Lab) -> None:
    cluster = lab.cluster()
    with _connect(cluster) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
    cluster.restart("immediate")
    with _connect(cluster) as conn:
        assert conn.execute("SELECT n FROM t").fetchall() == [(1,)]


def test_a_promoted_standby_has_every_write_and_takes_new_ones(lab: Lab) -> None:
    primary = lab.cluster()
    with _connect(primary) as conn:
        conn.execute("CREATE TABLE t (n int)")
    standby = lab.standby(primary)
    with _connect(primary) as conn:
        conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
    with psycopg.connect(_multi_host(primary, standby)) as conn:
        assert conn.info.port == primary.port
    deadline = time.monotonic() + 30
    with _connect(standby) as conn:
        while conn.execute("SELECT count(*) FROM t").fetchone() != (100,):
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.1)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO t VALUES (0)")
    primary.stop("fast")
    standby.promote()
    with psycopg.connect(_multi_host(primary, standby), autocommit=True) as conn:
        assert conn.info.port == standby.port
        conn.execute("INSERT INTO t VALUES (101)")
        assert conn.execute("SELECT count(*), max(n) FROM t").fetchone() == (101, 101)


def test_a_killed_server_takes_its_port_with_it(lab: Lab) -> None:
    port = 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = service_environ({}, lab.folder, OUTCOMES_PORT=str(port))
    server = Process(["serve"], env, lab.folder / "serve.log").start()
    lab.processes.append(server)
    assert server.wait_for_log("listening")["port"] == port
    server.kill9()
    assert server.popen is not None and server.popen.returncode == -9
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_load_on_one_sqlite_server_is_acknowledged_and_stored_once(lab: Lab) -> None:
    env = service_environ({}, lab.folder)
    service = Service(env, lab.folder, workers=1)
    service.process = Process(["serve"], {**env, "OUTCOMES_PORT": str(service.port)},
                              lab.folder / "serve.log").start()
    lab.services.append(service)
    service.process.wait_for_log("listening")
    load = Load(service.url, open_episodes(service.url, 4), threads=2, limit=5).start()
    load.join()
    assert len(load.acked) == 20 and set(load.statuses()) == {201}
    stored = acknowledged_are_stored_once(load, env)
    assert sum(stored.values()) == 20
    key = next(iter(load.acked))
    with client(service.url) as http:
        retry = http.post(f"/episodes/{key[0]}/assessments", json=load.bodies[key])
    assert retry.status_code == 200 and retry.json()["replayed"] is True
    assert sum(acknowledged_are_stored_once(load, env).values()) == 20
