"""Regenerate the figures table of README.md "## Benchmarks" from the benchmarks' JSON lines.

Run: ``.venv/bin/python -m bench.readme FILE...`` (saved output, e.g. of ``make bench``: every
line that is a JSON object with a ``bench`` key counts, the last of each benchmark wins) or
``.venv/bin/python -m bench.readme --run`` (runs the ``make bench``-sized commands below first).
Only the block between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` is rewritten, with the
machine and the date; the rest of the section is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"
# The sizes of `make bench` (keep in step with the Makefile).
COMMANDS = (
    ("bench.record_assessments", "--episodes", "100"),
    ("bench.import_csv", "--rows", "1000"),
    ("bench.rescore", "--episodes", "500"),
    ("bench.trust_cost", "--episodes", "100"),
    ("bench.api_load", "--requests", "30", "--workers", "2", "--synchronous", "NORMAL"),
)

SIZES = ("episodes", "rows", "assessments", "clients", "requests")


def figure_lines(text: str) -> dict[str, dict[str, Any]]:
    """Every benchmark's JSON line in ``text``, by module name (the last one of each wins)."""
    found: dict[str, dict[str, Any]] = {}
    for raw in text.splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("bench"), str):
            found[value["bench"]] = value
    return found


def machine() -> str:
    """This machine in a few words: CPU model (from /proc/cpuinfo), cores, OS, Python."""
    model = platform.processor() or platform.machine()
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _spread(figures: dict[str, Any], key: str) -> str:
    if f"{key}_min" not in figures:
        return ""
    return f" ({_rate(figures[f'{key}_min'])}-{_rate(figures[f'{key}_max'])})"


def table(figures: dict[str, dict[str, Any]], where: str, day: str) -> str:
    """The markdown of the marked block: one row per benchmark, in module order."""
    rows = [f"Figures of {day} on {where}; medians of the interleaved repeats, min-max in "
            "brackets. Regenerate with `python -m bench.readme`.", "",
            "| benchmark | size | workload | baseline | workload/s | baseline/s | ratio | repeats "
            "| peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(figures):
        f = figures[name]
        ratio = (f" ({f['ratio_min']:.2f}-{f['ratio_max']:.2f})" if "ratio_min" in f else "")
        rss = f"{f['peak_rss_mib']:.0f}"
        if f.get("server_peak_rss_mib") is not None:
            rss += f" (server {f['server_peak_rss_mib']:.0f})"
        size = ", ".join(f"{key} {f[key]:,}" for key in SIZES if isinstance(f.get(key), int))
        rows.append(f"| `{name}` | {size} | {f.get('workload_name', '')} | {f.get('baseline_name', '')} "
                    f"| {_rate(f['workload'])}{_spread(f, 'workload')} "
                    f"| {_rate(f['baseline'])}{_spread(f, 'baseline')} "
                    f"| {f['ratio']:.2f}{ratio} | {f.get('repeat', '')} | {rss} |")
    return "\n".join(rows)


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between the markers replaced by ``block``, nothing else."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"README has no {BEGIN} ... {END} block")
    return f"{text[:start + len(BEGIN)]}\n{block}\n{text[end:]}"


def run_all() -> str:
    """The output of every ``make bench``-sized command, each echoed as it ends."""
    out = []
    for command in COMMANDS:
        done = subprocess.run([sys.executable, "-m", *command], check=True,
                              capture_output=True, text=True)
        print(done.stdout.rstrip().splitlines()[-1], flush=True)
        out.append(done.stdout)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="saved benchmark output")
    parser.add_argument("--run", action="store_true", help="run the make bench commands first")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--machine", default=None, help="instead of this machine's description")
    args = parser.parse_args(argv)
    text = "\n".join(path.read_text() for path in args.files)
    if args.run:
        text += "\n" + run_all()
    figures = figure_lines(text)
    if not figures:
        raise SystemExit("no benchmark JSON lines found (give files or --run)")
    day = datetime.now(UTC).date().isoformat()
    block = table(figures, args.machine or machine(), day)
    args.readme.write_text(replace_block(args.readme.read_text(), block))
    print(f"{args.readme}: {len(figures)} benchmarks ({', '.join(sorted(figures))})")


if __name__ == "__main__":
    main()
