"""The cost of encryption at rest (ADR 0023) on ``record_assessment`` and on import, SQLite file.

Run: ``.venv/bin/python -m bench.encryption [--episodes N] [--repeat R]``.

Interleaved: each repeat runs the workload without a master key, then with one (a new SQLite
file each), so drift of the machine hits both alike; figures are medians of ``--repeat``. Also
the erasure recheck (``KeyTable._fresh``: one COUNT over the key table, at most once per
``recheck_seconds`` per process) and the HAM-D17 trial import.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from base64 import b64encode
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from application.outcomes import OutcomesApplication
from bootstrap import Settings, build
from importers.pipeline import Importer, Pseudonymiser
from importers.tabular import CsvMapping, read_csv

SCORES = (18, 16, 13, 8, 6, 4, 3, 4, 2, 3)
START = date(2026, 1, 5)
TRIAL = Path("tests/data/hamd17-rbmi-antidepressant/antidepressant_data.csv")
MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                     fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")


def _env(folder: Path, master: str | None) -> dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(folder / "outcomes.sqlite")}
    if master:
        env["LEDGER_MASTER_KEY"] = master
    return env


def record_assessments(folder: Path, episodes: int, master: str | None) -> float:
    """Assessments per second (record_assessment over ``episodes`` episodes x 10 weeks)."""
    now = datetime(2027, 1, 1, tzinfo=UTC)
    app = OutcomesApplication(_env(folder, master), clock=lambda: now)
    try:
        ids = [app.open_episode(patient_ref=f"bench-{n}", clinic_id="bench", recorded_by="b",
                                criteria="acnp2006", opened_on=START).episode_id
               for n in range(episodes)]
        started = time.perf_counter()
        for week, score in enumerate(SCORES):
            for episode_id in ids:
                app.record_assessment(episode_id, instrument="PHQ-9", total=score,
                                      administered=START + timedelta(weeks=week),
                                      recorded_by="b")
        return episodes * len(SCORES) / (time.perf_counter() - started)
    finally:
        app.close()


def import_trial(folder: Path, master: str | None) -> float:
    """Seconds to import the HAM-D17 trial (780 assessments, 172 episodes)."""
    settings = Settings(store="sqlite", sqlite_path=folder / "outcomes.sqlite",
                        cipher_key=SecretStr(master) if master else None)
    services = build(settings)
    try:
        started = time.perf_counter()
        Importer(services.app, clinic_id="trial", criteria="frank1991", source="csv:trial",
                 pseudonymise=Pseudonymiser(b"bench-pseudonym-key-0123456789")).run(read_csv(TRIAL, MAPPING))
        return time.perf_counter() - started
    finally:
        services.close()


def recheck_cost(folder: Path, master: str) -> float:
    """Microseconds of one erasure recheck (the COUNT query) over the trial's key table."""
    app = OutcomesApplication(_env(folder, master))
    try:
        keys = app.mapper.keys  # type: ignore[attr-defined]
        started = time.perf_counter()
        for _ in range(1000):
            keys._checked_at = 0.0
            keys._fresh()
        return (time.perf_counter() - started) * 1000
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    master = b64encode(os.urandom(32)).decode()
    rates: dict[str, list[float]] = {"plain": [], "encrypted": []}
    imports: dict[str, list[float]] = {"plain": [], "encrypted": []}
    recheck = []
    for _ in range(args.repeat):
        for name, key in (("plain", None), ("encrypted", master)):
            with tempfile.TemporaryDirectory() as tmp:
                rates[name].append(record_assessments(Path(tmp), args.episodes, key))
            with tempfile.TemporaryDirectory() as tmp:
                imports[name].append(import_trial(Path(tmp), key))
                if key:
                    recheck.append(recheck_cost(Path(tmp), key))
    plain, encrypted = (statistics.median(rates[n]) for n in ("plain", "encrypted"))
    plain_s, encrypted_s = (statistics.median(imports[n]) for n in ("plain", "encrypted"))
    print(f"SQLite file (WAL), record_assessment over {args.episodes} episodes x {len(SCORES)}, "
          f"interleaved, median of {args.repeat}")
    print(f"  plain      {plain:>8,.0f} assessments/s")
    print(f"  encrypted  {encrypted:>8,.0f} assessments/s   ratio encrypted/plain "
          f"{encrypted / plain:.2f} (time x{plain / encrypted:.2f})")
    print(f"HAM-D17 import: plain {plain_s:.2f} s, encrypted {encrypted_s:.2f} s "
          f"(time x{encrypted_s / plain_s:.2f})")
    print(f"erasure recheck (one COUNT, at most once a second): "
          f"{statistics.median(recheck):.0f} us")


if __name__ == "__main__":
    main()
