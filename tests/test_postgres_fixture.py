"""The PostgreSQL plumbing of the suite itself: the server is up, each test's place is its own
and gone after the test, a template's copy carries its tables and rows, and ``pg_cluster.py
run`` hands the cluster to its command and removes it however the command ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from postgres import Places, PostgresLedger, PostgresServer

SCRIPT = Path(__file__).parent / "support" / "pg_cluster.py"
seen: dict[str, str] = {}  # what the first test made, for the second to check (one file, one worker)


def test_the_session_server_is_postgresql_15_or_later(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None and int(row[0]) >= 150000


def test_a_test_gets_a_database_and_a_schema_of_its_own(
        postgres_database: PostgresLedger, fresh_schema: PostgresLedger) -> None:
    assert postgres_database.dbname != fresh_schema.dbname
    with fresh_schema.connect() as conn:
        conn.execute(f'CREATE TABLE "{fresh_schema.schema}".marker (n int)')  # our own name
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                              (fresh_schema.schema,)).fetchone()
    assert tables == (1,)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    assert postgres_database.dbname.startswith(f"t{os.getpid()}_{worker}_")
    seen.update(database=postgres_database.dbname, schema=fresh_schema.schema,
                scratch=fresh_schema.dbname)


def test_the_previous_tests_places_are_gone(postgres_server: PostgresServer) -> None:
    assert seen, "runs after the test above (same file, same worker)"
    assert seen["database"] not in postgres_server.databases()
    with postgres_server.connect(seen["scratch"]) as conn:
        schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                               (seen["schema"],)).fetchone()
    assert schemas == (0,)


def test_a_copy_of_a_template_has_its_rows_and_is_independent(
        postgres_places: Places) -> None:
    template = postgres_places.database()
    with postgres_places.server.connect(template) as conn:
        conn.execute("CREATE TABLE events (n bigint GENERATED ALWAYS AS IDENTITY, body text)")
        conn.execute("INSERT INTO events (body) VALUES ('a'), ('b')")
    started = time.perf_counter()
    copy = postgres_places.database(template=template)
    took = time.perf_counter() - started
    try:
        with postgres_places.server.connect(copy) as conn:
            conn.execute("INSERT INTO events (body) VALUES ('c')")
            rows = conn.execute("SELECT n, body FROM events ORDER BY n").fetchall()
        with postgres_places.server.connect(template) as conn:
            left = conn.execute("SELECT count(*) FROM events").fetchone()
    finally:
        postgres_places.drop(copy)
        postgres_places.drop(template)
    assert rows == [(1, "a"), (2, "b"), (3, "c")]  # the identity sequence is copied too
    assert left == (2,)
    assert took < 2.0  # ~15 ms here; a slow copy would cost every PostgreSQL test


def _run_script(*command: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SCRIPT), "run", "--", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _accepts(port: int) -> bool:
    try:
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                        connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def test_the_script_hands_its_cluster_over_and_removes_it_when_the_command_fails() -> None:
    probe = ("import os, psycopg; c = psycopg.connect(host=os.environ['OUTCOMES_TEST_POSTGRES_HOST'],"
             " port=os.environ['OUTCOMES_TEST_POSTGRES_PORT'], user=os.environ["
             "'OUTCOMES_TEST_POSTGRES_USER'], dbname='postgres'); print(c.execute('SHOW fsync')"
             ".fetchone()[0], os.environ['OUTCOMES_TEST_POSTGRES_PORT']); raise SystemExit(3)")
    process = _run_script(sys.executable, "-c", probe)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 3, err
    fsync, port = out.split()
    assert fsync == "off"
    assert not _accepts(int(port))
    assert f"PostgreSQL on 127.0.0.1:{port} in " in err
    assert not _folder(err).exists()


def test_the_script_removes_its_cluster_when_interrupted() -> None:
    process = _run_script(sys.executable, "-c",
                          "import os, time; print(os.environ['OUTCOMES_TEST_POSTGRES_PORT'],"
                          " flush=True); time.sleep(120)")
    assert process.stdout is not None
    port = int(process.stdout.readline())
    assert _accepts(port)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert not _accepts(port)
    assert not _folder(err).exists()


def _folder(stderr: str) -> Path:
    """The cluster's folder, from the script's line ``... PostgreSQL on HOST:PORT in FOLDER (...``."""
    return Path(stderr.split("PostgreSQL on ", 1)[1].split(" in ", 1)[1].split(" (", 1)[0])


def test_without_the_variables_a_session_starts_and_removes_its_own_server() -> None:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("OUTCOMES_TEST_POSTGRES_") and k != "PYTEST_XDIST_WORKER"}
    assert PostgresServer.from_environ(environ) is None
    before = set(Path(tempfile.gettempdir()).glob("pg-outcomes-*"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-n", "0", "-p", "no:cacheprovider",
         f"{__file__}::test_the_session_server_is_postgresql_15_or_later"],
        env=environ, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED tests/test_postgres_fixture.py::test_the_session_server_is" in done.stdout
    assert set(Path(tempfile.gettempdir()).glob("pg-outcomes-*")) <= before
