"""``outcomes audit verify`` compares the fold-inputs read model with the events like the other
read models: an untouched one verifies, an edited row is a read-model fault naming the view."""

from __future__ import annotations

import pytest
from trust_helpers import Ledger, fill

from bootstrap import build
from trust.verify import verify

pytestmark = pytest.mark.file_store


def test_an_edited_fold_inputs_row_is_a_read_model_fault(ledger: Ledger) -> None:
    ids = fill(ledger.settings)
    services = build(ledger.settings)
    try:
        services.read_models.catch_up(["fold-inputs"])
        assert verify(ledger.settings, deep=True).ok
        view = services.read_models.view("fold-inputs")
        with view.writing() as cursor:
            cursor.execute("UPDATE fold_inputs SET state = replace(state, '\"PHQ-9\"', "
                           "'\"GAD-7\"') WHERE episode_id = ?", (ids[1],))
    finally:
        services.close()
    report = verify(ledger.settings, deep=True)
    faults = [f for f in report.faults if f.kind == "read-model"]
    assert [f.detail.split(":")[0] for f in faults] == [
        "view fold-inputs, table fold_inputs"]
    assert ids[1] in faults[0].detail
