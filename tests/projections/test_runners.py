"""``projections.runner.run`` (``outcomes projections run``) on both stores: kill -9 of runner
processes mid-stream, ten times, and each read model converges to exactly the rebuild-from-zero
state; SIGTERM exits 0; one runner per read model (a second waits and takes over); the watchdog
exits non-zero when a view stops advancing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from test_both_stores import dump
from test_rebuild import generate

from projections.runner import READ_MODELS, ReadModels

RUNNER = """
import json, os, sys, threading, signal, logging
from pathlib import Path
from projections.runner import run
from projections.storage import PostgresViewStore, SQLiteViewStore
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
spec = json.loads(sys.argv[1])

class Settings:
    projection_stall_s = spec["stall_s"]
    def eventsourcing_env(self, store="outcomes", *, create_table=False):
        return spec["envs"][store]
    def view_store(self):
        if spec["kind"] == "sqlite":
            return SQLiteViewStore(Path(spec["folder"]))
        return PostgresViewStore(spec["envs"]["outcomes"], spec["schema"])

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
code = run(spec["names"], Settings(), stop)
sys.stdout.flush()
os._exit(code)  # as the CLI: a stalled runner's threads may hang on a blocked connection
"""


def runner(store, names=(), stall_s=60.0) -> subprocess.Popen[str]:
    spec = {"kind": store.kind, "folder": str(store.folder / "views"), "schema": store.schema,
            # as `outcomes db init` left them: runners start with table creation off
            "envs": {"outcomes": {**store.env(), "CREATE_TABLE": "n"},
                     "access-log": {**store.env("access-log"), "CREATE_TABLE": "n"}},
            "names": list(names), "stall_s": stall_s}
    return subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})


def until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_runners_killed_ten_times_mid_stream_converge_to_the_rebuilt_state(store):
    app = store.app()
    models = ReadModels.open(app, store.views())  # db init: tables created once
    access = store.access_log()
    ReadModels.open(access, store.views()).close()
    access.close()
    writing = threading.Thread(target=generate, args=(app, ReadModels.open(app, None), 40, 3))
    writing.start()
    rng_delays = [0.4, 0.9, 0.6, 1.2, 0.5, 0.8, 0.7, 1.0, 0.5, 0.9]
    for delay in rng_delays:
        process = runner(store)
        time.sleep(delay + 1.0)  # start-up, then process part of the stream
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, (out + err)[-3000:]
    writing.join()
    final = runner(store)
    time.sleep(3)  # its SIGTERM handler is installed once it has imported
    try:
        assert until(lambda: all(models.lag(n) == 0 for n in READ_MODELS), 120)
    finally:
        final.send_signal(signal.SIGTERM)
        _, err = final.communicate(timeout=30)
    assert final.returncode == 0, err[-2000:]
    for name in READ_MODELS:
        incremental = dump(models.views[name])
        models.rebuild(name)  # from zero, into a new generation
        assert dump(models.views[name]) == incremental, name
    models.close()
    app.close()


def test_a_second_runner_waits_and_takes_over_when_the_first_dies(store):
    app = store.app()
    models = ReadModels.open(app, store.views())
    first = runner(store, ["episodes"])
    time.sleep(2.0)
    second = runner(store, ["episodes"])
    time.sleep(3)
    app.open_episode(patient_ref="pt-1", clinic_id="c", recorded_by="u", criteria="acnp2006",
                     opened_on=generate.__globals__["START"])
    assert until(lambda: models.lag("episodes") == 0, 30)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert second.poll() is None  # it was waiting for the lock, not running beside the first
    app.open_episode(patient_ref="pt-2", clinic_id="c", recorded_by="u", criteria="acnp2006",
                     opened_on=generate.__globals__["START"])
    assert until(lambda: models.lag("episodes") == 0, 30)  # the second took over
    assert len(models.episodes.find()[0]) == 2
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err[-2000:]
    models.close()
    app.close()


def test_the_watchdog_exits_non_zero_when_a_view_stops_advancing(store):
    app = store.app()
    models = ReadModels.open(app, store.views())
    app.open_episode(patient_ref="pt-1", clinic_id="c", recorded_by="u", criteria="acnp2006",
                     opened_on=generate.__globals__["START"])
    # Hold the view's write lock so the runner cannot advance (a stalled subscription).
    view = models.views["episodes"]
    blocker = view.datastore.transaction(commit=False)
    cursor = blocker.__enter__()
    if store.kind == "sqlite":
        cursor.execute("UPDATE tracking SET notification_id = notification_id")
    else:
        cursor.execute("LOCK TABLE tracking IN EXCLUSIVE MODE")  # reads pass, writes wait
    process = runner(store, ["episodes"], stall_s=3.0)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        blocker.__exit__(None, None, None)
    assert process.returncode == 1, err[-2000:]
    assert "runner stalled" in out + err
    models.close()
    app.close()


def test_a_runner_follows_a_rebuild_to_the_new_generation(store):
    app = store.app()
    models = ReadModels.open(app, store.views())
    start = generate.__globals__["START"]
    app.open_episode(patient_ref="pt-1", clinic_id="c", recorded_by="u", criteria="acnp2006",
                     opened_on=start)
    process = runner(store, ["episodes"])
    try:
        assert until(lambda: models.lag("episodes") == 0, 30)
        models.rebuild("episodes")  # generation 2 is live now
        assert models._current("episodes").generation == 2
        app.open_episode(patient_ref="pt-2", clinic_id="c", recorded_by="u",
                         criteria="acnp2006", opened_on=start)
        assert until(lambda: models.lag("episodes") == 0, 30)  # processed into generation 2
        assert len(models.episodes.find()[0]) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]
    models.close()
    app.close()
