"""Comparing decoded event states exactly (the transcoder tests, ADR 0027): same types, same
values, same key order; NaN equals NaN (floats and Decimals) and -0.0 differs from 0.0."""

from __future__ import annotations

import math
from typing import Any


def same(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are the same JSON-decoded value, type for type, in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return repr(a) == repr(b)  # str, int, bool, None, UUID, date, datetime (with its offset), Decimal
