"""The msgspec transcoder against the library's JSONTranscoder on generated values (ADR 0027).

For any value (event-state-like documents of every JSON type, every registered custom type at
the top level and nested, floats of every size, NaN and infinities, big integers, non-ASCII,
control characters and lone surrogates, subclasses, Enums, tuples, non-string keys): the new
``encode`` gives the library's bytes or the library's error, and for any bytes the library
wrote, or the odd document the library reads, the new ``decode`` gives the library's value.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import TranscodingNotRegisteredError
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transcoder_helpers import same

from application.outcomes import OutcomesApplication
from application.transcoder import LIBRARY_TOPIC, FastJSONTranscoder

LIBRARY = OutcomesApplication({"TRANSCODER_TOPIC": LIBRARY_TOPIC}
                              ).mapper.transcoder
NEW = OutcomesApplication({}).mapper.transcoder


class Colour(enum.Enum):
    RED = "red"


class Label(str):
    pass


class Count(int):
    pass


text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # surrogates too
keys = st.one_of(st.text(max_size=8), st.sampled_from(["_type_", "_data_", "timestamp"]))
moments = st.datetimes(timezones=st.one_of(st.none(), st.just(UTC),
                                           st.builds(lambda m: timezone(timedelta(minutes=m)),
                                                     st.integers(-720, 720))))
custom = st.one_of(st.uuids(), moments, st.dates(), st.decimals(allow_nan=False))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2 ** 80), 2 ** 80), st.floats(),
    st.floats(min_value=0.001, max_value=1e15), text, custom,
    st.sampled_from([Colour.RED, Label("x"), Count(3), -0.0, 1e-5, 1e16, 5e-324]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(keys, inner, max_size=5),
    st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none()), inner, max_size=2),
    st.builds(lambda name, data: {"_type_": name, "_data_": data},
              st.sampled_from(["uuid_hex", "date_iso", "datetime_iso", "decimal_str", "nope"]),
              inner),
), max_leaves=12)
states = st.dictionaries(keys, values, max_size=8)
PLAIN_STATES = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8),
              st.floats(min_value=0.001, max_value=100), custom,
              st.lists(st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
                       max_size=3)), max_size=8)


def outcome(call: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", call(value)
    except Exception as exc:  # the same kind of error (value errors, unregistered types...)
        return "error", type(exc)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(states, values))
@example({"x": float("nan"), "y": float("inf")})
@example({"when": date(2026, 1, 5), "nested": [date(2026, 1, 5)]})
@example({"id": UUID(int=7)})
@example({"s": "\ud800"})
def test_encode_gives_the_library_bytes_or_its_error(value):
    old, new = outcome(LIBRARY.encode, value), outcome(NEW.encode, value)
    assert old == new
    if old[0] == "ok":
        assert same(outcome(NEW.decode, old[1]), outcome(LIBRARY.decode, old[1]))


@settings(max_examples=500, deadline=None)
@given(PLAIN_STATES)
def test_event_like_states_take_the_fast_path_both_ways(value):
    data = LIBRARY.encode(value)
    assert NEW.encode(value) == data
    assert same(NEW.decode(data), LIBRARY.decode(data))


@pytest.mark.parametrize("data", [
    b'{"a":NaN,"b":Infinity,"c":-Infinity}', b'{"big":123456789012345678901234567890}',
    b'{"x":1e400}', b'{"\\u005ftype_":"uuid_hex","_data_":"' + b"0" * 32 + b'"}',
    b'{"t":{"\\u005ftype_":"date_iso","_data_":"2026-01-05"}}',
    b'{"_type_":"date_iso","_data_":"2026-01-05"}', b'[{"_type_":"date_iso","_data_":"2026-01-05"}]',
    b'{"a":[{"_type_":"date_iso","_data_":"2026-01-05"}],"b":{"_type_":"date_iso","_data_":"2026-01-06"}}',
    b'{"a":{"_type_":"decimal_str","_data_":"1.5","more":1},"b":{"_type_":"x"}}',
    b'{"a":{"_type_":"uuid_hex","_data_":{"_type_":"date_iso","_data_":"2026-01-05"}}}',
    b'{"s":"\\ud800"}', b'{"dup":1,"dup":2}', b' {"a" : [1 , 2.50] } ', b'[]', b'"x"', b"17",
    b'{"when":{"_type_":"datetime_iso","_data_":"2026-01-05T09:30:00+01:00"},"n":null}',
])
def test_decode_gives_the_library_value(data):
    old, new = outcome(LIBRARY.decode, data), outcome(NEW.decode, data)
    assert old[0] == new[0] and (same(old[1], new[1]) if old[0] == "ok" else old == new)


def test_unregistered_envelopes_and_types_raise_the_library_error():
    with pytest.raises(TranscodingNotRegisteredError, match="'nope' is not deserializable"):
        NEW.decode(b'{"a":{"_type_":"nope","_data_":1}}')
    with pytest.raises(TranscodingNotRegisteredError, match="not serializable"):
        NEW.encode({"colour": Colour.RED})


def test_every_application_of_the_ledger_uses_it_with_its_transcodings():
    from application.access_log import AccessLog
    from application.rescoring import RescoringLog
    for app_class, names in ((OutcomesApplication, {"uuid_hex", "decimal_str", "datetime_iso",
                                                    "date_iso"}),
                             (RescoringLog, {"uuid_hex", "decimal_str", "datetime_iso"}),
                             (AccessLog, {"uuid_hex", "decimal_str", "datetime_iso"})):
        transcoder = app_class({}).mapper.transcoder
        assert type(transcoder) is FastJSONTranscoder and set(transcoder.names) == names
    assert type(LIBRARY) is not FastJSONTranscoder


def test_a_typical_state_round_trips_with_its_types():
    state = {"timestamp": datetime(2026, 1, 5, 9, 30, tzinfo=UTC), "clinical_date": date(2026, 1, 5),
             "items": [1, None, 3], "score": 4.5, "reason": "Zoë\n", "id": "a1"}
    data = NEW.encode(state)
    assert data == (b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-05T09:30:00+00:00"},'
                    b'"clinical_date":{"_type_":"date_iso","_data_":"2026-01-05"},'
                    b'"items":[1,null,3],"score":4.5,"reason":"Zo\xc3\xab\\n","id":"a1"}')
    assert same(NEW.decode(data), state) and data == LIBRARY.encode(state)
    assert NEW.encode({"d": Decimal("1.50")}) == b'{"d":{"_type_":"decimal_str","_data_":"1.50"}}'
