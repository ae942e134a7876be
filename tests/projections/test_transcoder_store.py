"""The msgspec transcoder on a real store: every stored event's bytes are the library's (ADR 0027).

A store is filled by the library's own ``JSONTranscoder`` (``TRANSCODER_TOPIC`` set back to it):
the HAM-D17 trial file imported as ``outcomes import csv`` does, bench.rescore's generated PHQ-9
courses, and episodes with prorated items (floats in the evidence), non-ASCII text, a source
document, voids and discharges under each kind of set; then more episodes by the ledger's
applications as they are now (the msgspec transcoder). For every stored event, on SQLite and on
PostgreSQL: the new transcoder encodes the library's decoding of the bytes to the same bytes, the
library re-encodes what the new one wrote to the same bytes, and both decode the same values.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from transcoder_helpers import same

from application.outcomes import OutcomesApplication
from application.transcoder import LIBRARY_TOPIC, FastJSONTranscoder
from bench.import_csv import TRIAL, TRIAL_MAPPING
from bench.rescore import _course
from importers.pipeline import Importer, Pseudonymiser
from importers.tabular import read_csv

LIBRARY = {"TRANSCODER_TOPIC": LIBRARY_TOPIC}
NOW = datetime(2027, 1, 1, tzinfo=UTC)


def _episodes(app: OutcomesApplication, clinician: str) -> None:
    """Episodes that reach floats, nested documents, non-ASCII and every kind of set."""
    for criteria in ("frank1991", "acnp2006-symptom", "nhs-talking-therapies-2024", "cms159"):
        opened = app.open_episode(patient_ref=f"pseudo-{criteria}", clinic_id="clinic-ü",
                                  recorded_by=clinician, criteria=criteria,
                                  opened_on=date(2026, 1, 5))
        ident = opened.episode_id
        rows = [(0, [3, 3, 2, 3, None, 2, 3, 2, 1]), (14, [2, 2, 2, 1, 1, None, 2, 1, 0]),
                (28, [1, 1, 0, 1, None, 1, 0, 1, 0]), (42, [0, 0, 0, 1, 0, None, 0, 0, 0]),
                (56, [0, 0, 0, 0, 1, 0, None, 0, 0]), (70, [0, 0, 1, 0, 0, 0, 0, 0, 0])]
        for days, items in rows:
            app.record_assessment(ident, instrument="PHQ-9", items=items,
                                  administered=datetime(2026, 1, 5, 9, 30,
                                                        tzinfo=timezone(timedelta(hours=1)))
                                  + timedelta(days=days),
                                  recorded_by=clinician, assessment_id=f"a{days}",
                                  source={"system": "paper — ward 3", "key_hash": "0" * 64,
                                          "recorded_at": None, "flags": ["ANSWER_CODE_MISMATCH"]})
            app.record_assessment(ident, instrument="GAD-7", items=[2, 2, 1, 1, 0, 0, 1 if days else 3],
                                  administered=date(2026, 1, 5) + timedelta(days=days),
                                  recorded_by=clinician, assessment_id=f"g{days}")
        app.void_assessment(ident, "a28", reason="falsche Patientin,\n«Zoë» \"quoted\"\t",
                            recorded_by=clinician)
        app.close_episode(ident, discharged_on=date(2026, 3, 20), recorded_by=clinician)


@pytest.fixture
def states(store: Any) -> list[bytes]:
    """Every stored event's state: written by the library's transcoder, then by the new one."""
    library = OutcomesApplication({**store.env(), **LIBRARY}, clock=lambda: NOW)
    try:
        assert type(library.mapper.transcoder).__name__ == "JSONTranscoder"
        importer = Importer(library, clinic_id="trial", criteria="frank1991", source="trial",
                            pseudonymise=Pseudonymiser(b"test-key-0123456789abcdef"))
        summary = importer.run(read_csv(TRIAL, TRIAL_MAPPING))
        assert summary.recorded > 500 and not summary.skipped
        rng = random.Random(1991)
        for _ in range(10):  # each a new episode id
            library.save(*_course(rng, "frank1991"))
        _episodes(library, "clinician-Ødegård")
    finally:
        library.close()
    current = OutcomesApplication(store.env(), clock=lambda: NOW)
    try:
        assert type(current.mapper.transcoder) is FastJSONTranscoder
        _episodes(current, "clinician-ß")
        found, start = [], 1
        while page := current.recorder.select_notifications(start=start, limit=500):
            found += [n.state for n in page]
            start = page[-1].id + 1
    finally:
        current.close()
    return found


def test_every_stored_event_transcodes_to_the_same_bytes_and_values(store, states):
    library = OutcomesApplication(LIBRARY).mapper.transcoder
    new = OutcomesApplication({}).mapper.transcoder
    assert isinstance(new, FastJSONTranscoder) and not isinstance(library, FastJSONTranscoder)
    assert len(states) > 1000
    topics = set()
    old_values = [library.decode(state) for state in states]
    with mock.patch.object(type(library), "decode", autospec=True,
                           side_effect=type(library).decode) as fallback:
        new_values = [new.decode(state) for state in states]
    for state, old, value in zip(states, old_values, new_values, strict=True):
        assert same(value, old), state
        assert new.encode(old) == state
        assert library.encode(value) == state
        topics.add(old.get("originator_topic"))
    # the fast path decoded almost all of them (the library only a few nested documents)
    assert fallback.call_count < len(states) / 20
    assert "outcome-ledger:Episode" in topics


def test_the_store_holds_floats_non_ascii_and_dates_as_the_library_writes_them(states):
    joined = b"\n".join(states)
    assert b'"score":21.375' in joined and b'"change":-20.375' in joined  # prorated: 19 x 9 / 8
    assert "Ødegård".encode() in joined and "\\n«Zoë» \\\"quoted\\\"".encode() in joined
    assert b'{"_type_":"date_iso","_data_":"2026-01-05"}' in joined
    assert b'{"_type_":"datetime_iso","_data_":"2026-01-05T09:30:00+01:00"}' in joined

