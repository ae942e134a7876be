"""Import speed: assessments per second from CSV through the application, on SQLite.

Run: ``.venv/bin/python -m bench.import_csv [--rows 100000]``.

Imports the HAM-D17 trial file of ``tests/data`` (608 rows + 172 baselines) and a generated
CSV of ``--rows`` PHQ-9 rows (10 weekly rows per patient), each into a fresh SQLite store under
``frank1991``, the way ``outcomes import csv`` does (same reader, same Importer), and reports
assessments per second next to a bare ``eventsourcing`` aggregate saving one event per
``save()`` in the same run (``bench.record_assessments.bare_save``).
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from application.outcomes import OutcomesApplication
from bench.record_assessments import bare_save
from importers.pipeline import Importer, Pseudonymiser
from importers.tabular import CsvMapping, read_csv
from trust.chain import SQLITE_RECORDER_TOPIC

TRIAL = Path(__file__).resolve().parents[1] / "tests" / "data" / \
    "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient", "date", "phq9"])
        for n in range(rows):
            patient, week = f"P{n // 10:06d}", n % 10
            score = max(0, min(27, 20 - 2 * week + rng.randint(-3, 3)))
            writer.writerow([patient, date(2025, 1, 6) + timedelta(weeks=week), score])


def timed_import(folder: Path, name: str, path: Path, mapping: CsvMapping, *,
                 chained: bool = False) -> tuple[int, float]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(folder / f"{name}{'-chained' if chained else ''}.sqlite")}
    if chained:  # the hash chain in the append's transaction (trust.chain, ADR 0022)
        env["APPLICATION_RECORDER_TOPIC"] = SQLITE_RECORDER_TOPIC
    return import_in(env, name, path, mapping)


def import_in(env: dict[str, str], name: str, path: Path,
              mapping: CsvMapping) -> tuple[int, float]:
    """Import the CSV ``path`` as ``outcomes import csv`` does into the store of the library
    environment ``env``: (assessments recorded, seconds)."""
    app = OutcomesApplication(env)
    try:
        importer = Importer(app, clinic_id="bench", criteria="frank1991", source=name,
                            pseudonymise=Pseudonymiser(b"bench-key-0123456789abcdef"))
        started = time.perf_counter()
        summary = importer.run(read_csv(path, mapping))
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    assert not summary.skipped, summary.skipped
    return summary.recorded, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare = bare_save(folder, 1000)
        trial = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                           fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
        results = {"HAM-D17 trial file": timed_import(folder, "trial", TRIAL, trial),
                   "HAM-D17 trial, chained": timed_import(folder, "trial", TRIAL, trial,
                                                          chained=True)}
        generated = folder / "generated.csv"
        generate(generated, args.rows)
        results[f"generated, {args.rows:,} rows"] = timed_import(
            folder, "generated", generated,
            CsvMapping(patient="patient", date="date", fixed_instrument="PHQ-9", total="phq9"))
    print(f"{'input':<28}{'assessments':>12}{'seconds':>9}{'per second':>12}{'vs bare save':>14}")
    for name, (count, seconds) in results.items():
        print(f"{name:<28}{count:>12,}{seconds:>9.1f}{count / seconds:>12,.0f}"
              f"{count / seconds / bare:>14.2f}")
    print(f"bare eventsourcing save: {bare:,.0f} events per second (SQLite, same run)")
    plain, chained = results["HAM-D17 trial file"], results["HAM-D17 trial, chained"]
    print(f"chained / unchained import throughput (trial file): "
          f"{(chained[0] / chained[1]) / (plain[0] / plain[1]):.3f}")


if __name__ == "__main__":
    main()
