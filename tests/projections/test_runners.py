"""``projections.runner.run`` (``outcomes projections run``) on both stores: one runner per read
model (a second waits and takes over); the watchdog exits non-zero when a view stops advancing;
a runner follows a rebuild to the new generation. Runners killed ten times mid-stream are
tests/faults/test_runner_killed.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

from test_rebuild import generate

from projections.runner import ReadModels

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
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err[-2000:]
    # it said it was waiting, then that it took over, then that it stopped (trial: silent)
    said = [line for line in (out + err).splitlines() if "runner " in line]
    assert [next(p for p in ("waiting", "started", "stopped") if f"runner {p}" in line)
            for line in said] == ["waiting", "started", "stopped"], said
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


def test_a_burst_after_catching_up_is_processed_in_batches_again(store):
    if store.kind == "sqlite":
        return  # the SQLite runner always polls in batches
    app = store.app()
    models = ReadModels.open(app, store.views())
    start = date(2020, 1, 6)  # daily assessments after it are all in the past
    episodes = [app.open_episode(patient_ref=f"pt-{n}", clinic_id="c", recorded_by="u",
                                 criteria="acnp2006", opened_on=start).episode_id
                for n in range(8)]
    process = runner(store, ["audit"])
    try:
        assert until(lambda: models.lag("audit") == 0, 30)  # caught up: on the subscription
        view = models.views["audit"]
        with view.datastore.transaction(commit=False) as cursor:  # hold the runner back
            cursor.execute("LOCK TABLE tracking IN EXCLUSIVE MODE")
            for day in range(1, 101):  # 800 events: more than a batch (500) behind
                for episode_id in episodes:
                    app.record_assessment(episode_id, instrument="PHQ-9", recorded_by="nurse",
                                          administered=start + timedelta(days=day), total=12)
        assert until(lambda: models.lag("audit") == 0, 60)
        assert [models.audit.trail(episode_id=e, limit=200)[0][-1]["version"]
                for e in episodes] == [102] * 8  # Opened, 100 assessments and the off-track
        # alert of week 14 (PHQ-9 12 >= 9 on day 98: schueller2015-phq9, ADR 0031)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]
    assert "runner behind, catching up in batches" in out + err
    models.close()
    app.close()


def test_make_run_postgres_starts_one_runner_per_read_model_by_its_real_name():
    from pathlib import Path

    from projections.runner import ACCESS_MODELS, READ_MODELS

    script = (Path(__file__).parents[2] / "scripts" / "run-postgres.sh").read_text()
    [loop] = [line for line in script.splitlines() if line.startswith("for view in ")]
    names = loop.removeprefix("for view in ").removesuffix("; do").split()
    assert names == [*READ_MODELS, *ACCESS_MODELS]
    assert '"$BIN/outcomes" projections run "$view" &' in script
