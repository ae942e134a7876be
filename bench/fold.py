"""The staging fold alone: folds per second today next to the same fold in an earlier commit's
tree (by default the last one where every score was a ``Fraction``, before ADR 0027).

Run: ``.venv/bin/python -m bench.fold [--against f1ff13b] [--courses 60] [--rounds 40]
[--repeat 3] [--criteria acnp2006]``. The courses are those of ``bench.rescore``: random PHQ-9
courses of 8-12 weekly totals (seed 1991). ``--against`` is extracted with ``git archive`` into a
temporary folder; each repeat folds every course ``--rounds`` times in a fresh process of that
tree (the baseline) and then of this one, interleaved. The last line is one JSON object
(``bench.figures``): today's folds per second ÷ the earlier tree's.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tarfile
import tempfile
from datetime import date, timedelta
from io import BytesIO
from pathlib import Path

from bench.figures import emit, line, peak_rss_mib
from domain.criteria.fold import Observation

HERE = Path(__file__).resolve().parent.parent
# One measurement in the tree named by sys.path[0]; prints folds per second.
_CHILD = """
import datetime, sys, time
from domain.criteria.builtin import get_criteria
from domain.criteria.fold import Observation, fold
courses, rounds, criteria = eval(sys.argv[1]), int(sys.argv[2]), get_criteria(sys.argv[3])
for rows in courses:
    fold(rows, criteria)
started = time.perf_counter()
for _ in range(rounds):
    for rows in courses:
        fold(rows, criteria)
print(rounds * len(courses) / (time.perf_counter() - started))
"""


def courses(count: int, seed: int = 1991) -> list[list[Observation]]:
    """``count`` PHQ-9 courses of 8-12 weekly totals, drawn as ``bench.rescore`` draws them."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        total, rows = rng.randint(10, 24), []
        for week in range(rng.randint(8, 12)):
            total = max(0, min(27, total + rng.randint(-5, 2)))
            rows.append(Observation(f"a{week}", "PHQ-9", date(2026, 1, 5) + timedelta(weeks=week),
                                    total=total))
        out.append(rows)
    return out


def folds_per_second(tree: Path, runs: list[list[Observation]], criteria: str,
                     rounds: int) -> float:
    """Fold every course ``rounds`` times in a fresh process importing ``tree``; folds/s."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, repr(runs), str(rounds), criteria], cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)}, check=True, capture_output=True, text=True)
    return float(out.stdout)


def extract(ref: str, into: Path) -> Path:
    """The tree of commit ``ref`` of this repository, extracted under ``into``."""
    archive = subprocess.run(["git", "archive", ref], cwd=HERE, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="f1ff13b",
                        help="the commit to compare with (default: before ADR 0027)")
    parser.add_argument("--courses", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--criteria", default="acnp2006")
    args = parser.parse_args(argv)
    runs = courses(args.courses)
    baseline: list[float] = []
    workload: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        before = extract(args.against, Path(tmp))
        for _ in range(args.repeat):
            baseline.append(folds_per_second(before, runs, args.criteria, args.rounds))
            workload.append(folds_per_second(HERE, runs, args.criteria, args.rounds))
    figures = line("bench.fold", baseline, workload,
                   baseline_name=f"fold under {args.criteria} at {args.against}",
                   workload_name=f"fold under {args.criteria}, this tree",
                   courses=args.courses, rounds=args.rounds,
                   peak_rss_mib=peak_rss_mib(resource.RUSAGE_CHILDREN))
    print(f"folds/s, median of {args.repeat} (min-max): {args.against} {figures['baseline']:,.0f} "
          f"({figures['baseline_min']:,.0f}-{figures['baseline_max']:,.0f}), this tree "
          f"{figures['workload']:,.0f} ({figures['workload_min']:,.0f}-"
          f"{figures['workload_max']:,.0f}), ratio {figures['ratio']:.2f}")
    emit(figures)


if __name__ == "__main__":
    main()
