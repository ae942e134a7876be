"""A reused PostgreSQL ledger (tests/support/postgres.py, ``Places.ledger``) is as a fresh copy
of the template: nothing of the earlier test's rows, sequences, sessions or objects."""

from __future__ import annotations

import psycopg
from postgres import Places, PostgresServer

WRITE = ("INSERT INTO ledger.outcomes_events (originator_id, originator_version, topic, state) "
         "SELECT gen_random_uuid(), 1, 'x', 'y'::bytea FROM generate_series(1, %s) "
         "RETURNING notification_id")
TRACKING = "SELECT * FROM ledger_episodes_v2_g1.tracking ORDER BY 1"


def test_a_ledger_given_back_is_handed_out_again_as_the_template_left_it(
        postgres_server: PostgresServer) -> None:
    places = Places(postgres_server, tag="reuse")
    try:
        first = places.ledger()
        with first.connect() as conn:
            pristine_tracking = conn.execute(TRACKING).fetchall()
            conn.execute(WRITE, (25,))
            conn.execute("UPDATE ledger_episodes_v2_g1.tracking SET notification_id = 77")
        # A session the test left open, in a transaction holding a lock on an event table.
        left_open = psycopg.connect(host=postgres_server.host, port=postgres_server.port,
                                    user=postgres_server.user, dbname=first.dbname)
        left_open.execute("LOCK TABLE ledger.outcomes_events")
        places.give_back(first.dbname)

        again = places.ledger()
        assert again.dbname == first.dbname and places.copies == 1  # reset, not copied
        with again.connect() as conn:
            assert conn.execute(WRITE, (1,)).fetchall() == [(1,)]  # the sequence reset too
            assert conn.execute("SELECT count(*) FROM ledger.outcomes_events").fetchone() == (1,)
            assert conn.execute(TRACKING).fetchall() == pristine_tracking
            conn.execute("CREATE SCHEMA ledger_episodes_v2_g2")  # what a rebuild makes
        places.give_back(again.dbname)
        left_open.close()  # ended by the reset: closing it is all that is left

        other = places.ledger()  # its objects differ from the template's: a new copy
        assert other.dbname != first.dbname and places.copies == 2
        assert first.dbname not in postgres_server.databases()
        with other.connect() as conn:
            assert conn.execute("SELECT count(*) FROM ledger.outcomes_events").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = "
                                "'ledger_episodes_v2_g2'").fetchone() == (0,)
        places.give_back(other.dbname)
    finally:
        places.close()
    assert not {name for name in postgres_server.databases() if name.startswith(places.prefix)}
