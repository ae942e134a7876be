"""Projection catch-up rates on SQLite and PostgreSQL (ADR 0018).

Run: ``.venv/bin/python -m bench.projections --store sqlite --episodes 1000`` or
``--store postgres --postgres-port 5432 ...`` (a scratch database: a fresh schema is created
and dropped). Generates ``--episodes`` episodes of 8 weekly PHQ-9 assessments through the
application, then measures, per read model, events per second of (1) the batched catch-up
(``ReadModels.catch_up``, ``batch_size`` events per transaction; what inline mode and the SQLite
runner do) and, on PostgreSQL, (2) the library's ``ProjectionRunner`` (one transaction per event)
with ``synchronous_commit`` off (the default for views) and on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from application.outcomes import OutcomesApplication
from projections.base import ReadModel
from projections.runner import READ_MODELS, ReadModels, ViewRunner
from projections.storage import PostgresViewStore, SQLiteViewStore, ViewStore

START = date(2026, 1, 5)


def generate(app: OutcomesApplication, episodes: int) -> None:
    for n in range(episodes):
        opened = app.open_episode(patient_ref=f"pt-{n}", clinic_id=f"clinic-{n % 5}",
                                  recorded_by="bench", criteria="frank1991", opened_on=START)
        for week, total in enumerate((20, 18, 15, 11, 8, 6, 5, 4)):
            app.record_assessment(opened.episode_id, instrument="PHQ-9",
                                  administered=START + timedelta(weeks=week), total=total,
                                  recorded_by="bench")


def runner_rate(app: OutcomesApplication, store: ViewStore, view_class: type[ReadModel],
                env: dict[str, str], generation: int, asynchronous: bool) -> float:
    view = store.open(view_class, generation, create=True)
    view.asynchronous_commit = asynchronous
    last = [n.id for n in app.recorder.select_notifications(
        start=1, limit=10**9, topics=view.topics)][-1]
    started = time.perf_counter()
    with ViewRunner(application_class=OutcomesApplication, view=view, env=env) as runner:
        runner.wait(last, timeout=600)
    elapsed = time.perf_counter() - started
    count = len(app.recorder.select_notifications(start=1, limit=10**9, topics=view.topics))
    view.datastore.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--postgres-host", default="127.0.0.1")
    parser.add_argument("--postgres-port", default="5432")
    parser.add_argument("--postgres-user", default="postgres")
    parser.add_argument("--postgres-dbname", default="postgres")
    args = parser.parse_args()
    results: dict[str, Any] = {"store": args.store, "episodes": args.episodes}
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    if args.store == "sqlite":
        folder = Path(tempfile.mkdtemp())
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
               "SQLITE_DBNAME": str(folder / "outcomes.sqlite")}
        store: ViewStore = SQLiteViewStore(folder / "views")
    else:
        import psycopg
        server = {"host": args.postgres_host, "port": args.postgres_port,
                  "user": args.postgres_user, "dbname": args.postgres_dbname}
        with psycopg.connect(autocommit=True, **server) as conn:
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
        env = {"PERSISTENCE_MODULE": "eventsourcing.postgres",
               "POSTGRES_DBNAME": args.postgres_dbname, "POSTGRES_HOST": args.postgres_host,
               "POSTGRES_PORT": args.postgres_port, "POSTGRES_USER": args.postgres_user,
               "POSTGRES_PASSWORD": "", "POSTGRES_SCHEMA": schema}
        store = PostgresViewStore(env, schema)
    app = OutcomesApplication(env)
    started = time.perf_counter()
    generate(app, args.episodes)
    results["events"] = app.recorder.max_notification_id()
    results["generate_s"] = round(time.perf_counter() - started, 1)
    models = ReadModels.open(app, store)
    for name in READ_MODELS:
        started = time.perf_counter()
        count = models.catch_up([name])
        results[f"{name}_batched_events_per_s"] = round(count / (time.perf_counter() - started))
    if args.store == "postgres":
        for asynchronous, label in ((True, "async"), (False, "sync")):
            rate = runner_rate(app, store, READ_MODELS["audit"], env, 5 if asynchronous else 6,
                               asynchronous)
            results[f"audit_runner_{label}_commit_events_per_s"] = round(rate)
    models.close()
    app.close()
    print(json.dumps(results, indent=1))
    if args.store == "postgres":
        with psycopg.connect(autocommit=True, **server) as conn:
            for (name,) in conn.execute("SELECT nspname FROM pg_namespace WHERE "
                                        "starts_with(nspname, %s)", (schema,)).fetchall():
                conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(
                    psycopg.sql.Identifier(name)))


if __name__ == "__main__":
    main()
