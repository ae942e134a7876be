"""Every benchmark's last line is one JSON object with the keys of issue 12, and bench.readme
rewrites only the README's marked block. Tiny sizes, in process; nothing here is timed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bench import (
    api_load,
    figures,
    fold,
    import_csv,
    readme,
    record_assessments,
    rescore,
    transcoder,
    trust_cost,
)

NUMBERS = ("ratio", "baseline", "workload", "baseline_min", "baseline_max", "workload_min",
           "workload_max", "ratio_min", "ratio_max", "peak_rss_mib")


def last_line(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return value


def assert_figures(value: dict[str, Any], bench: str, repeat: int) -> None:
    assert value["bench"] == bench
    for key in NUMBERS:
        assert isinstance(value[key], float | int) and value[key] > 0, key
    assert value["baseline_min"] <= value["baseline"] <= value["baseline_max"]
    assert value["workload_min"] <= value["workload"] <= value["workload_max"]
    assert value["repeat"] == repeat
    assert isinstance(value["baseline_name"], str) and isinstance(value["workload_name"], str)
    assert value["ratio"] == pytest.approx(value["workload"] / value["baseline"], abs=1e-3)


@pytest.fixture
def short_trial(tmp_path: Path) -> Path:
    """The first 40 rows of the trial file (its columns, fewer patients)."""
    path = tmp_path / "trial.csv"
    path.write_text("".join(import_csv.TRIAL.read_text().splitlines(keepends=True)[:41]))
    return path


def test_record_assessments_ends_with_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    returned = record_assessments.main(["--episodes", "2", "--repeat", "2", "--long-episodes",
                                        "1", "--long-events", "60", "--long-rounds", "1"])
    value = last_line(capsys)
    assert value == returned
    assert_figures(value, "bench.record_assessments", 2)
    assert value["baseline_name"].startswith("bare command")
    assert set(value["per_second"]) == {"bare save", "bare command", "record_assessment",
                                        "record, chained"}
    assert value["assessments"] == 20
    assert value["long_events"] == 60
    assert set(value["long_per_second"]) == {f"{length}, snapshots {on}" for on in ("off", "on")
                                             for length in ("short", "long")}
    assert value["long_over_short"] > 0 and value["long_over_short_unsnapshotted"] > 0


def test_import_csv_ends_with_its_figures(capsys: pytest.CaptureFixture[str], short_trial: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_csv, "TRIAL", short_trial)
    value = import_csv.main(["--rows", "20", "--repeat", "2", "--batch-size", "10"])
    assert last_line(capsys) == value
    assert_figures(value, "bench.import_csv", 2)
    assert value["baseline_name"].startswith("bare batched save")
    assert value["assessments"] > 0 and value["events"] > value["assessments"]
    assert set(value["events_per_second"]) == {"bare batched save", "batched import",
                                               "per-assessment import", "generated, 20 rows"}
    assert value["speedup"] > 0 and value["batch_size"] == 10


def test_rescore_ends_with_its_figures(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    rescore.generate(db, 3)
    value = rescore.measure(db, 2, lambda path, name: list(rescore.PARTS[name](path)))
    figures.emit(value)
    assert last_line(capsys) == value
    assert_figures(value, "bench.rescore", 2)
    assert value["episodes"] == 3 and value["assessments"] > 0
    assert isinstance(value["driver_rss_mib"], float)


def test_trust_cost_ends_with_its_figures(capsys: pytest.CaptureFixture[str], short_trial: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trust_cost, "TRIAL", short_trial)
    trust_cost.main(["--episodes", "2", "--repeat", "1"])
    value = last_line(capsys)
    assert_figures(value, "bench.trust_cost", 1)
    assert {"record_per_second", "import_per_second", "chain_ratio", "encryption_ratio",
            "import_ratio"} <= set(value)


def test_fold_ends_with_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    fold.main(["--against", "HEAD", "--courses", "2", "--rounds", "1", "--repeat", "2"])
    value = last_line(capsys)
    assert_figures(value, "bench.fold", 2)
    assert value["courses"] == 2 and value["baseline_name"] == "fold under acnp2006 at HEAD"


def test_transcoder_ends_with_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    transcoder.main(["--courses", "2", "--rounds", "1", "--repeat", "2"])
    value = last_line(capsys)
    assert_figures(value, "bench.transcoder", 2)
    assert value["events"] > 10 and value["mean_state_bytes"] > 100


def test_api_load_figures_are_post_over_health() -> None:
    results = {"GET /health": [(200.0, [5.0, 6.0]), (100.0, [7.0, 8.0])],
               "POST assessments": [(50.0, [9.0, 10.0]), (40.0, [11.0, 12.0])],
               "GET stages": [(80.0, [6.0, 7.0]), (90.0, [5.0, 6.0])]}
    value = api_load.figures(results, clients=2, requests=2,
                             server_rss=api_load.server_peak_rss_mib(os.getpid()))
    json.dumps(value)
    assert_figures(value, "bench.api_load", 2)
    assert value["ratio"] == pytest.approx(45.0 / 150.0, rel=1e-2)
    assert (value["ratio_min"], value["ratio_max"]) == (0.25, 0.4)
    assert value["baseline_name"] == "GET /health"
    assert isinstance(value["server_peak_rss_mib"], float)
    assert set(value["p50_ms"]) == set(results)


def test_api_load_figures_add_the_workers_and_synchronous_ratios() -> None:
    results = {"GET /health": [(200.0, [5.0]), (100.0, [7.0])],
               "POST assessments": [(50.0, [9.0]), (40.0, [11.0])],
               "GET stages": [(80.0, [6.0]), (90.0, [5.0])],
               "POST, 2 workers": [(75.0, [6.0]), (80.0, [5.0])],
               "POST, synchronous=NORMAL": [(100.0, [3.0]), (60.0, [4.0])]}
    value = api_load.figures(results, clients=2, requests=2, server_rss=None, workers=2)
    assert value["workers"] == 2
    assert value["workers_ratio"] == pytest.approx(77.5 / 45.0, abs=1e-3)
    assert (value["workers_ratio_min"], value["workers_ratio_max"]) == (1.5, 2.0)
    assert value["sync_ratio"] == pytest.approx(80.0 / 45.0, abs=1e-3)
    assert (value["sync_ratio_min"], value["sync_ratio_max"]) == (1.5, 2.0)
    assert value["per_second"]["POST, 2 workers"] == 77.5
    # one worker, no NORMAL phase: neither ratio
    plain = api_load.figures({k: results[k] for k in list(results)[:3]}, clients=2, requests=2,
                             server_rss=None)
    assert "workers_ratio" not in plain and "sync_ratio" not in plain


README_TEXT = """# Title

## Benchmarks

Text before that stays.

<!-- bench:begin -->
| old | table |
<!-- bench:end -->

Text after that stays, ## Design decisions too.
"""


def test_readme_replaces_only_the_marked_block(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(README_TEXT)
    older = figures.line("bench.rescore", [10.0], [4.0], baseline_name="raw", workload_name="run")
    newer = figures.line("bench.rescore", [10.0, 12.0], [5.0, 6.0], baseline_name="raw read",
                         workload_name="shadow run")
    out = tmp_path / "out.txt"
    out.write_text(f"table\n{json.dumps(older)}\nnot json {{\n{json.dumps(newer)}\n")
    readme.main([str(out), "--readme", str(path), "--machine", "test box, 2 cores"])
    text = path.read_text()
    before, rest = text.split(readme.BEGIN)
    block, after = rest.split(readme.END)
    assert before == README_TEXT.split(readme.BEGIN)[0]
    assert after == README_TEXT.split(readme.END)[1]
    assert "| old | table |" not in block and "test box, 2 cores" in block
    assert "| `bench.rescore` |  | shadow run | raw read | 6 (5-6) | 11 (10-12) | 0.50" in block
    readme.main([str(out), "--readme", str(path), "--machine", "test box, 2 cores"])
    assert path.read_text() == text  # the same lines give the same README (same day)


def test_readme_refuses_a_readme_without_markers() -> None:
    with pytest.raises(SystemExit):
        readme.replace_block("## Benchmarks\n", "block")
