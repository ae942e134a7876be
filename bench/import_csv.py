"""Import speed: assessments per second from CSV through the application, on SQLite.

Run: ``.venv/bin/python -m bench.import_csv [--rows 100000] [--repeat 3] [--bare-episodes 1000]``.

Imports the HAM-D17 trial file of ``tests/data`` (608 rows + 172 baselines) and a generated
CSV of ``--rows`` PHQ-9 rows (10 weekly rows per patient), each into a fresh SQLite store under
``frank1991``, the way ``outcomes import csv`` does (same reader, same Importer), and reports
assessments per second next to a bare ``eventsourcing`` aggregate saving one event per
``save()`` in the same run (``bench.record_assessments.bare_save``), interleaved in every repeat.
The last line is one JSON object (``bench.figures``): the trial file's rate / the bare save.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from application.outcomes import OutcomesApplication
from bench.figures import emit, line
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


TRIAL_MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                           fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
GENERATED_MAPPING = CsvMapping(patient="patient", date="date", fixed_instrument="PHQ-9",
                               total="phq9")
BASELINE_NAME = "bare_save (one event per save(), no batched baseline yet)"


def measure(rows: int, repeat: int, bare_episodes: int,
            trial: Path | None = None) -> dict[str, list[tuple[int, float]]]:
    """Per repeat, interleaved: the bare save, the trial file, the trial file chained and the
    generated CSV (if ``rows``), each into a fresh store: (events or assessments, seconds).
    ``trial`` is another file of the trial's columns (the tests' short one)."""
    trial = trial or TRIAL
    results: dict[str, list[tuple[int, float]]] = {
        "bare save": [], "HAM-D17 trial file": [], "HAM-D17 trial, chained": []}
    with tempfile.TemporaryDirectory() as tmp:
        generated = Path(tmp) / "generated.csv"
        generate(generated, rows)
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as run:
                folder = Path(run)
                rate = bare_save(folder, bare_episodes)
                results["bare save"].append((bare_episodes * 10, bare_episodes * 10 / rate))
                results["HAM-D17 trial file"].append(
                    timed_import(folder, "trial", trial, TRIAL_MAPPING))
                results["HAM-D17 trial, chained"].append(
                    timed_import(folder, "trial", trial, TRIAL_MAPPING, chained=True))
                if rows:
                    results.setdefault(f"generated, {rows:,} rows", []).append(
                        timed_import(folder, "generated", generated, GENERATED_MAPPING))
    return results


def figures(results: dict[str, list[tuple[int, float]]], rows: int) -> dict[str, Any]:
    """The JSON last line: the trial file's import rate / the bare save."""
    rates = {name: [count / seconds for count, seconds in runs] for name, runs in results.items()}
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return line("bench.import_csv", rates["bare save"], rates["HAM-D17 trial file"],
                baseline_name=BASELINE_NAME, workload_name="import of the HAM-D17 trial file",
                rows=rows, assessments=results["HAM-D17 trial file"][0][0],
                per_second={k: round(v, 1) for k, v in medians.items()},
                chain_ratio=round(medians["HAM-D17 trial, chained"]
                                  / medians["HAM-D17 trial file"], 3))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="generated CSV rows (0: none)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bare-episodes", type=int, default=1000,
                        help="aggregates of the bare save (10 events each)")
    args = parser.parse_args(argv)
    results = measure(args.rows, args.repeat, args.bare_episodes)
    bare = statistics.median(count / seconds for count, seconds in results["bare save"])
    print(f"SQLite file (WAL), interleaved, median of {args.repeat}")
    print(f"{'input':<28}{'assessments':>12}{'seconds':>9}{'per second':>12}{'vs bare save':>14}")
    for name, runs in results.items():
        if name == "bare save":
            continue
        count = runs[0][0]
        seconds = statistics.median(s for _, s in runs)
        print(f"{name:<28}{count:>12,}{seconds:>9.1f}{count / seconds:>12,.0f}"
              f"{count / seconds / bare:>14.2f}")
    print(f"bare eventsourcing save: {bare:,.0f} events per second (SQLite, same run)")
    result = figures(results, args.rows)
    print(f"chained / unchained import throughput (trial file): {result['chain_ratio']:.3f}")
    emit(result)
    return result


if __name__ == "__main__":
    main()
