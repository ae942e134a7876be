"""The last line every benchmark prints: one JSON object with its figures (issue 12).

Keys common to all: ``bench`` (the module name), ``ratio`` (median workload ÷ median baseline),
``baseline`` and ``workload`` (medians, per second), their ``_min``/``_max`` over the repeats,
``ratio_min``/``ratio_max`` (of the interleaved pairs), ``repeat``, ``baseline_name`` and
``workload_name`` (what was measured), ``peak_rss_mib`` (``ru_maxrss`` of this process, MiB,
unless the benchmark names the process that ran the workload); a benchmark adds its own keys.
``bench.readme`` reads these lines.
"""

from __future__ import annotations

import json
import resource
import statistics
from typing import Any


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory of this process (or of its waited-for children), MiB."""
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def line(bench: str, baseline: list[float], workload: list[float], *, baseline_name: str,
         workload_name: str, **extra: Any) -> dict[str, Any]:
    """The figures of ``workload`` next to ``baseline`` (per second, one value per repeat, in
    the order they were interleaved)."""
    base, work = statistics.median(baseline), statistics.median(workload)
    pairs = [w / b for b, w in zip(baseline, workload, strict=True)]
    return {"bench": bench, "ratio": round(work / base, 3),
            "baseline": round(base, 1), "workload": round(work, 1),
            "baseline_min": round(min(baseline), 1), "baseline_max": round(max(baseline), 1),
            "workload_min": round(min(workload), 1), "workload_max": round(max(workload), 1),
            "ratio_min": round(min(pairs), 3), "ratio_max": round(max(pairs), 3),
            "repeat": len(workload), "baseline_name": baseline_name,
            "workload_name": workload_name, "peak_rss_mib": peak_rss_mib(), **extra}


def emit(figures: dict[str, Any]) -> None:
    """Print ``figures`` as the last line of the benchmark's output."""
    print(json.dumps(figures), flush=True)
