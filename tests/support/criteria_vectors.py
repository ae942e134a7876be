"""The public worked vectors of the clinical specification (docs/clinical-rules.md §5), loaded from
the repository's copy in ``tests/data/criteria-vectors/vectors.json`` (see its SOURCE.md).

``VECTORS`` is the list of vectors as in the JSON file (dicts with ``id``, ``assessments``,
``expected`` ...); ``BY_ID`` maps a vector id to it; ``ORDER`` is the canonical order of event types
on one date that the specification's checker uses when it compares event lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_FILE = Path(__file__).resolve().parents[1] / "data" / "criteria-vectors" / "vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text())
BY_ID: dict[str, dict[str, Any]] = {vector["id"]: vector for vector in VECTORS}
ORDER = ["SafetyItemPositive", "BaselineBelowThreshold", "ResponseReached", "RemissionReached",
         "RelapseDetected", "RecoveryConfirmed", "RecurrenceDetected"]
