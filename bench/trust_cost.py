"""What tamper evidence and encryption at rest cost (issue 11): record_assessment and import.

Run: ``make bench`` or ``.venv/bin/python -m bench.trust_cost [--episodes N] [--repeat R]``.

Four configurations of the SQLite file store, each on a fresh file, interleaved in every repeat
(A B C D A B C D ...) so that drift of the machine hits all alike; figures are medians of
``--repeat`` with min-max:
- ``bare command``: the library alone, ``repository.get`` + one event + ``save()`` per call
  (``bench.record_assessments.bare_command``);
- ``plain``: Outcome Ledger as before issue 11 (the library's recorder, no master key);
- ``chained``: the hash chain written in the append's transaction (trust.chain, ADR 0022), the
  default now;
- ``chained+encrypted``: and a master key (OUTCOMES_CIPHER_KEY): each event's state encrypted
  under its patient's data key (trust.cipher, ADR 0023).
The environments come from ``bootstrap.Settings.eventsourcing_env`` (what the service runs),
``plain`` being that environment without the chained recorder. Import: the HAM-D17 trial file
(780 assessments, 172 patients: a key row per new patient when encrypted). The last line is one
JSON object with every median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from base64 import b64encode
from datetime import date
from pathlib import Path

from pydantic import SecretStr

from bench import figures
from bench.import_csv import TRIAL, import_in
from bench.record_assessments import bare_command, record_in
from bootstrap import Settings
from importers.tabular import CsvMapping

CONFIGURATIONS = ("plain", "chained", "chained+encrypted")
MAPPING = CsvMapping(patient="PATIENT", day="RELDAYS", anchor=date(2004, 1, 5),
                     fixed_instrument="HAM-D17", total="HAMDTL17", baseline="BASVAL")


def environment(folder: Path, configuration: str, master: str) -> dict[str, str]:
    """The library environment of ``configuration`` for a store in ``folder``."""
    settings = Settings(store="sqlite", sqlite_path=folder / "outcomes.sqlite",
                        cipher_key=SecretStr(master) if "encrypted" in configuration else None)
    env = settings.eventsourcing_env()
    if configuration == "plain":
        env.pop("APPLICATION_RECORDER_TOPIC", None)
    return env


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):>9,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    master = b64encode(os.urandom(32)).decode()
    record: dict[str, list[float]] = {"bare command": [], **{c: [] for c in CONFIGURATIONS}}
    imports: dict[str, list[float]] = {c: [] for c in CONFIGURATIONS}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            record["bare command"].append(bare_command(Path(tmp), args.episodes))
        for configuration in CONFIGURATIONS:
            with tempfile.TemporaryDirectory() as tmp:
                env = environment(Path(tmp), configuration, master)
                record[configuration].append(record_in(env, args.episodes))
            with tempfile.TemporaryDirectory() as tmp:
                env = environment(Path(tmp), configuration, master)
                count, _events, seconds = import_in(env, "trial", TRIAL, MAPPING)
                imports[configuration].append(count / seconds)
    medians = {name: statistics.median(values) for name, values in record.items()}
    import_medians = {name: statistics.median(values) for name, values in imports.items()}
    print(f"SQLite file (WAL, synchronous=FULL), record_assessment over {args.episodes} episodes "
          f"x 10 weeks; HAM-D17 trial import; interleaved, medians of {args.repeat} (min-max)")
    print(f"{'configuration':<20}{'record/s':>26}{'vs plain':>9}{'vs bare':>8}"
          f"{'import/s':>26}{'vs plain':>9}")
    for name in record:
        line = (f"{name:<20}{_median(record[name]):>26}"
                f"{medians[name] / medians['plain']:>9.2f}"
                f"{medians[name] / medians['bare command']:>8.2f}")
        if name in imports:
            line += (f"{_median(imports[name]):>26}"
                     f"{import_medians[name] / import_medians['plain']:>9.2f}")
        print(line)
    top = medians["chained+encrypted"]
    figures.emit(figures.line("bench.trust_cost", record["plain"], record["chained+encrypted"],
        baseline_name="record_assessment, plain",
        workload_name="record_assessment, chained+encrypted", episodes=args.episodes,
        record_per_second={k: round(v, 1) for k, v in medians.items()},
        import_per_second={k: round(v, 1) for k, v in import_medians.items()},
        chain_ratio=round(medians["chained"] / medians["plain"], 3),
        encryption_ratio=round(top / medians["chained"], 3),
        import_ratio=round(import_medians["chained+encrypted"] / import_medians["plain"], 3)))


if __name__ == "__main__":
    main()
