"""Import speed on SQLite: the batched import next to a bare batched save of the same events.

Run: ``.venv/bin/python -m bench.import_csv [--rows 100000] [--repeat 3] [--batch-size 500]``.

Imports the HAM-D17 trial file of ``tests/data`` (608 rows + 172 baselines: 780 assessments,
172 patients) the way ``outcomes import csv`` does (same reader, same Importer, frank1991), into
a fresh SQLite file per run with the store's default settings (``bootstrap.Settings``: WAL,
``synchronous=FULL``, the hash chain in the append's transaction, no encryption). Interleaved in
every repeat, each into a fresh file:
- ``bare batched save``: the library's bare aggregates (``bench.record_assessments.Counter``)
  saving exactly as many events as the import stores, shaped as its batches are (as many
  aggregates per ``save()``, as many events each; measured once beforehand), one ``save()`` per
  batch, on the same chained recorder and settings;
- ``batched import``: ``Importer(batch_size=...)``, one transaction per batch of patients;
- ``per-assessment import``: ``Importer(batch_size=0)``, one transaction per assessment (the
  import before ADR 0026);
- with ``--rows``, a generated CSV of that many PHQ-9 rows (10 weekly rows per patient), batched.
The last line is one JSON object (``bench.figures``): ``ratio`` = batched import ÷ bare batched
save (events per second; the same events, so the inverse ratio of their times), ``speedup`` =
batched import ÷ per-assessment import. Figures on a shared machine are indicative.
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
from uuid import UUID

from eventsourcing.application import Application

from application.outcomes import OutcomesApplication
from bench.figures import emit, line
from bench.record_assessments import Counter
from bootstrap import Settings
from importers.pipeline import DEFAULT_BATCH_SIZE, Importer, Pseudonymiser
from importers.tabular import CsvMapping, read_csv

TRIAL = Path(__file__).resolve().parents[1] / "tests" / "data" / \
    "hamd17-rbmi-antidepressant" / "antidepressant_data.csv"
TRIAL_MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                           fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")
GENERATED_MAPPING = CsvMapping(patient="patient", date="date", fixed_instrument="PHQ-9",
                               total="phq9")
Shape = list[list[int]]  # per save(): the events of each aggregate saved


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient", "date", "phq9"])
        for n in range(rows):
            patient, week = f"P{n // 10:06d}", n % 10
            score = max(0, min(27, 20 - 2 * week + rng.randint(-3, 3)))
            writer.writerow([patient, date(2025, 1, 6) + timedelta(weeks=week), score])


def store_env(path: Path) -> dict[str, str]:
    """The default SQLite store's library environment (chained recorder), in file ``path``."""
    return Settings(store="sqlite", sqlite_path=path).eventsourcing_env()


def import_in(env: dict[str, str], name: str, path: Path, mapping: CsvMapping, *,
              batch_size: int = DEFAULT_BATCH_SIZE,
              shape: Shape | None = None) -> tuple[int, int, float]:
    """Import the CSV ``path`` as ``outcomes import csv`` does into the store of the library
    environment ``env``: (assessments recorded, events stored, seconds). ``shape``, if given,
    receives the events of each episode of each transaction."""
    app = OutcomesApplication(env)
    try:
        importer = Importer(app, clinic_id="bench", criteria="frank1991", source=name,
                            pseudonymise=Pseudonymiser(b"bench-key-0123456789abcdef"),
                            batch_size=batch_size)
        if shape is not None:
            save = app.save

            def shaped(*aggregates: Any, **kwargs: Any) -> Any:
                assert shape is not None
                shape.append([len(a.pending_events) for a in aggregates])
                return save(*aggregates, **kwargs)
            app.save = shaped  # type: ignore[method-assign]
        started = time.perf_counter()
        summary = importer.run(read_csv(path, mapping))
        elapsed = time.perf_counter() - started
        events = app.recorder.max_notification_id() or 0
    finally:
        app.close()
    assert not summary.skipped, summary.skipped
    return summary.recorded, events, elapsed


def bare_batched_save(env: dict[str, str], shape: Shape) -> tuple[int, float]:
    """The library's bare aggregates saving the events of ``shape`` (one ``save()`` per entry:
    one Counter per number, created and incremented to that many events): (events, seconds)."""
    app: Application[UUID] = Application(env)
    try:
        started = time.perf_counter()
        for batch in shape:
            aggregates = [Counter() for _ in batch]
            for aggregate, events in zip(aggregates, batch, strict=True):
                for _ in range(events - 1):
                    aggregate.increment(by=1)
            app.save(*aggregates)
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    return sum(map(sum, shape)), elapsed


def measure(rows: int, repeat: int, batch_size: int,
            trial: Path | None = None) -> dict[str, list[tuple[int, int, float]]]:
    """Per repeat, interleaved, each into a fresh store: the bare batched save, the batched
    import and the per-assessment import of the trial file (``trial``: another file of its
    columns, e.g. the tests' short one), then the generated CSV (if ``rows``):
    (assessments, events, seconds)."""
    trial = trial or TRIAL
    results: dict[str, list[tuple[int, int, float]]] = {
        "bare batched save": [], "batched import": [], "per-assessment import": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generated = folder / "generated.csv"
        generate(generated, rows)
        shape: Shape = []
        import_in(store_env(folder / "shape.sqlite"), "trial", trial, TRIAL_MAPPING,
                  batch_size=batch_size, shape=shape)
        for n in range(repeat):
            events, seconds = bare_batched_save(store_env(folder / f"bare-{n}.sqlite"), shape)
            results["bare batched save"].append((0, events, seconds))
            results["batched import"].append(import_in(
                store_env(folder / f"batched-{n}.sqlite"), "trial", trial, TRIAL_MAPPING,
                batch_size=batch_size))
            results["per-assessment import"].append(import_in(
                store_env(folder / f"single-{n}.sqlite"), "trial", trial, TRIAL_MAPPING,
                batch_size=0))
            if rows:
                results.setdefault(f"generated, {rows:,} rows", []).append(import_in(
                    store_env(folder / f"generated-{n}.sqlite"), "generated", generated,
                    GENERATED_MAPPING, batch_size=batch_size))
    return results


def figures(results: dict[str, list[tuple[int, int, float]]], rows: int,
            batch_size: int) -> dict[str, Any]:
    """The JSON last line: batched import ÷ bare batched save (events per second)."""
    events = {name: [e / s for _, e, s in runs] for name, runs in results.items()}
    assessments = {name: [a / s for a, _, s in runs] for name, runs in results.items()}
    batched, single = assessments["batched import"], assessments["per-assessment import"]
    speedups = [b / s for b, s in zip(batched, single, strict=True)]
    result = line("bench.import_csv", events["bare batched save"], events["batched import"],
                  baseline_name="bare batched save (the import's events and batches, one save() "
                                "per batch; SQLite, chained, synchronous=FULL)",
                  workload_name=f"import of the HAM-D17 trial file, batches of {batch_size} "
                                "records (events per second)",
                  rows=rows, batch_size=batch_size,
                  assessments=results["batched import"][0][0],
                  events=results["batched import"][0][1],
                  speedup=round(statistics.median(speedups), 3),
                  speedup_min=round(min(speedups), 3), speedup_max=round(max(speedups), 3),
                  assessments_per_second={k: round(statistics.median(v), 1)
                                          for k, v in assessments.items()
                                          if k != "bare batched save"},
                  events_per_second={k: round(statistics.median(v), 1)
                                     for k, v in events.items()})
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="generated CSV rows (0: none)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="records per transaction of the batched import")
    args = parser.parse_args(argv)
    results = measure(args.rows, args.repeat, args.batch_size)
    print(f"SQLite file (WAL, synchronous=FULL, hash chain), interleaved, median of "
          f"{args.repeat}; batches of {args.batch_size} records")
    print(f"{'run':<28}{'assessments':>12}{'events':>9}{'seconds':>9}{'events/s':>10}")
    for name, runs in results.items():
        assessments, events = runs[0][0], runs[0][1]
        seconds = statistics.median(s for _, _, s in runs)
        print(f"{name:<28}{assessments:>12,}{events:>9,}{seconds:>9.2f}{events / seconds:>10,.0f}")
    result = figures(results, args.rows, args.batch_size)
    print(f"batched import / bare batched save: {result['ratio']:.3f} "
          f"({result['ratio_min']:.3f}-{result['ratio_max']:.3f}); batched / per-assessment "
          f"import: {result['speedup']:.2f} ({result['speedup_min']:.2f}-"
          f"{result['speedup_max']:.2f})")
    emit(result)
    return result


if __name__ == "__main__":
    main()
