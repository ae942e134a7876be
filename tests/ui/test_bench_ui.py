"""bench.ui_pages on a tiny store: every page and reference has its row (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import ui_pages


def test_the_harness_reports_every_page_and_reference_on_50_episodes(tmp_path: Path, capsys):
    out = tmp_path / "ui-pages.json"
    argv = ["--episodes", "50", "--requests", "2", "--repeat", "1",
            "--store", str(tmp_path / "store"), "--json", str(out)]
    figures = ui_pages.main(argv)
    printed = capsys.readouterr().out

    names = [e.name for e in ui_pages.endpoints([], "run")]
    assert len(names) == 10
    for name in names:
        assert f"| {name} |" in printed, name
    assert json.loads(out.read_text())["pages"].keys() == set(names)
    assert figures["episodes"] == 50
    built = json.loads((tmp_path / "store" / "built.json").read_text())
    assert built["episodes"] == 50 and built["assessments"] > 50 * 5
    # the references and the caseload page exist on every branch: measured, 2 requests each
    for name in ("GET /health", "GET /episodes/{id} (JSON)", "GET /clinics/{c}/caseload (JSON)",
                 "caseload, big clinic"):
        assert figures["pages"][name]["status"] == "measured"
        assert figures["pages"][name]["requests"] == 2

    ui_pages.main(argv)  # the second run reuses the store
    assert "(reused; built in" in capsys.readouterr().out


def test_the_generated_courses_are_seeded_and_spread_as_documented():
    first = list(ui_pages.courses(200, seed=3))
    again = list(ui_pages.courses(200, seed=3))
    assert first == again
    assert sum(c.clinic_id == ui_pages.BIG for c in first) == 20
    assert {c.clinic_id for c in first} == set(ui_pages.CLINICS)
    for course in first:
        assert 1 <= len(course.phq9) <= 12
        for on, total, items in course.phq9:
            assert 0 <= total <= 27 and on <= ui_pages.NOW.date()
            assert items is None or (len(items) == 9 and sum(items) == total)
        if course.discharged_on is not None:
            assert course.discharged_on > course.phq9[-1][0]
