"""Decode + encode of stored episode events: the msgspec transcoder next to the library's
``JSONTranscoder`` (ADR 0027).

Run: ``.venv/bin/python -m bench.transcoder [--courses 200] [--rounds 20] [--repeat 3]``. The
events are bench.rescore's generated PHQ-9 courses under ``frank1991`` (openings, assessments,
stage decisions), as stored. Each repeat decodes and re-encodes every stored state ``--rounds``
times with the library's transcoder, then with ``application.transcoder``, interleaved in one
process. The last line is one JSON object (``bench.figures``): events per second, new ÷ library.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from application.outcomes import OutcomesApplication
from application.transcoder import LIBRARY_TOPIC
from bench.figures import emit, line
from bench.rescore import _course

LIBRARY_ENV = {"TRANSCODER_TOPIC": LIBRARY_TOPIC}


def stored_states(courses: int, seed: int = 1991) -> list[bytes]:
    """The stored states of ``courses`` generated episodes, as the library writes them."""
    app = OutcomesApplication(LIBRARY_ENV)
    rng = random.Random(seed)
    return [app.mapper.to_stored_event(event).state
            for _ in range(courses) for event in _course(rng, "frank1991")]


def round_trips(states: list[bytes], decode: Callable[[bytes], Any],
                encode: Callable[[Any], bytes], rounds: int) -> float:
    """Decode and re-encode every state ``rounds`` times; events per second."""
    started = time.perf_counter()
    for _ in range(rounds):
        for state in states:
            encode(decode(state))
    return rounds * len(states) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--courses", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    states = stored_states(args.courses)
    library = OutcomesApplication(LIBRARY_ENV).mapper.transcoder
    new = OutcomesApplication({}).mapper.transcoder
    assert all(new.encode(library.decode(s)) == s for s in states)
    baseline: list[float] = []
    workload: list[float] = []
    for _ in range(args.repeat):
        baseline.append(round_trips(states, library.decode, library.encode, args.rounds))
        workload.append(round_trips(states, new.decode, new.encode, args.rounds))
    figures = line("bench.transcoder", baseline, workload,
                   baseline_name="eventsourcing JSONTranscoder decode + encode",
                   workload_name="application.transcoder (msgspec) decode + encode",
                   events=len(states), mean_state_bytes=round(sum(map(len, states)) / len(states)))
    print(f"{len(states):,} stored states; events/s, median of {args.repeat} (min-max): library "
          f"{figures['baseline']:,.0f} ({figures['baseline_min']:,.0f}-"
          f"{figures['baseline_max']:,.0f}), msgspec {figures['workload']:,.0f} "
          f"({figures['workload_min']:,.0f}-{figures['workload_max']:,.0f}), "
          f"ratio {figures['ratio']:.2f}")
    emit(figures)


if __name__ == "__main__":
    main()
