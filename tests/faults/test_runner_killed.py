"""kill -9 the projection runners (``outcomes projections run NAME``, one process per read
model) 10 times while events stream in: each read model, resumed from its tracking position
after every kill, converges to exactly what a rebuild from zero gives (issue 10, "Faults")."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from fault_harness import (
    READ_MODELS,
    ROOT,
    Lab,
    Load,
    client,
    open_episodes,
    service_environ,
)
from postgres import PostgresLedger

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
KILLS = 10
CLINICS = ("clinic-a", "clinic-b")


def _read(http: httpx.Client, url: str, position: int, **params: Any) -> Any:
    """GET ``url`` once its read model has passed ``position`` (X-Min-Position; a 503 while
    it is behind is tried again for up to 60 s); the JSON body, pages followed."""
    deadline = time.monotonic() + 60
    items: list[Any] = []
    while True:
        answer = http.get(url, params=params, headers={"X-Min-Position": str(position)})
        if answer.status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if not isinstance(body, dict) or "items" not in body:
            return body
        items += body["items"]
        if not body.get("next"):
            return items
        url, params = body["next"], {}


def snapshot(url: str, episodes: list[str], position: int) -> dict[str, Any]:
    """Everything the four read models answer about ``episodes`` and the clinics."""
    with client(url) as http:
        found: dict[str, Any] = {}
        for clinic in CLINICS:
            found[f"episodes {clinic}"] = _read(http, "/episodes", position, clinic_id=clinic,
                                                limit=500)
            found[f"audit {clinic}"] = _read(http, "/audit", position, clinic_id=clinic,
                                             limit=500)
            found[f"cohort {clinic}"] = _read(http, f"/clinics/{clinic}/outcomes", position)
        for episode_id in episodes:
            for part in ("", "/stages", "/audit"):
                found[f"{episode_id}{part}"] = _read(http, f"/episodes/{episode_id}{part}",
                                                     position)
    return found


def test_each_read_model_converges_to_its_rebuild_after_ten_kills(
        lab: Lab, postgres_ledger: PostgresLedger) -> None:
    store = postgres_ledger.environ()
    service = lab.service(store, workers=1, OUTCOMES_PROJECTIONS="runners")
    episodes = (open_episodes(service.url, 6, "clinic-a")
                + open_episodes(service.url, 6, "clinic-b"))
    runners = {name: lab.runner(store, name) for name in READ_MODELS}
    load = Load(service.url, episodes, threads=4, limit=40).start()  # 480 assessments
    rng = random.Random(20261201)
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.2, 0.8))
        for name in READ_MODELS:
            runners[name].kill9()
            runners[name] = lab.runner(store, name)
    load.join()
    assert len(load.acked) == len(episodes) * 40
    position = max(body["position"] for body in load.acked.values())

    resumed = snapshot(service.url, episodes, position)
    for process in runners.values():
        assert process.stop() == 0  # a runner exits cleanly on SIGTERM
    env = service_environ(store, lab.folder)
    for name in READ_MODELS:
        done = subprocess.run([sys.executable, "-m", "cli", "projections", "rebuild", name],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    for name in READ_MODELS:
        lab.runner(store, name)
    rebuilt = snapshot(service.url, episodes, position)
    assert resumed.keys() == rebuilt.keys()
    assert [k for k in resumed if resumed[k] != rebuilt[k]] == []
    assert resumed["cohort clinic-a"]["episodes"] == 6  # the models hold the whole stream
    assert len(resumed["episodes clinic-b"]) == 6
