"""A JSON transcoder on msgspec that writes and reads exactly what the library's does (ADR 0027).

``FastJSONTranscoder`` is a ``JSONTranscoder`` (so ``Application.register_transcodings`` still
registers UUIDAsHex, DecimalAsStr, DatetimeAsISO and the applications' own, such as DateAsISO),
whose ``encode`` and ``decode`` take a fast path through ``msgspec.json`` when the value is one
whose bytes are known to be the library's, and otherwise hand the value to the library's
``JSONTranscoder`` itself:

- encode: the top-level values of a registered custom type (exact type, as the library looks
  them up) become the library's ``{"_type_": name, "_data_": ...}`` envelope; the result must
  then hold only exact ``dict`` (``str`` keys), ``list``, ``tuple``, ``str``, ``int``, ``bool``,
  ``None`` and finite ``float`` with 0.001 <= |x| < 1e15 or x == 0 (where msgspec writes
  ``repr(x)``, as ``json`` does). Anything else (a custom type below the top level, an Enum, a
  subclass, a float written in exponent form, NaN) is encoded by the library. Both write compact
  separators, insertion key order and UTF-8 without ASCII escapes.
- decode: msgspec parses (integers of any size exactly, as ``json``); the top-level values that
  are envelopes of plain data are decoded by their registered transcodings. When that fails,
  when the count of ``"_type_"`` keys in the bytes says envelopes remain elsewhere (nested, or
  the document itself), when the bytes hold a ``\\u`` escape (a key could be an escaped
  ``_type_``), or when msgspec refuses the document (NaN, Infinity, a lone surrogate), the
  library decodes it, so its errors are the library's, in the library's order.

``ExplicitEnvironment.construct_transcoder`` installs it in every application of the ledger
(``TRANSCODER_TOPIC``, the library's setting, can still name another: ``LIBRARY_TOPIC`` is the
library's own, which the tests and benchmarks compare with).
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import JSONTranscoder, Transcoding

LIBRARY_TOPIC = "eventsourcing.persistence:JSONTranscoder"
_NATIVE = (str, int, float, list, tuple, dict)  # json writes these itself, never via default
_ENVELOPE_KEY = b'"_type_"'


class FastJSONTranscoder(JSONTranscoder):
    """The library's JSONTranscoder, byte for byte, with msgspec on the common path.

    ``encode(obj) -> bytes`` and ``decode(data: bytes) -> Any`` as ``JSONTranscoder``; the errors
    are the library's (``TranscodingNotRegisteredError`` for an unregistered type or envelope
    name, ``ValueError``/``UnicodeError`` for what ``json`` refuses), raised by the library's own
    code on the fallback path.
    """

    def __init__(self) -> None:
        super().__init__()
        self._custom: dict[type, Transcoding] = {}
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def register(self, transcoding: Transcoding) -> None:
        """Register as the library does; types ``json`` writes natively are never enveloped."""
        super().register(transcoding)
        if not issubclass(transcoding.type, _NATIVE):
            self._custom[transcoding.type] = transcoding

    def encode(self, obj: Any) -> bytes:
        """The library's bytes for ``obj`` (see the module docstring for the fast path)."""
        if type(obj) is dict:
            custom = self._custom
            shallow = {}
            for key, value in obj.items():
                transcoding = custom.get(type(value))
                if transcoding is not None:
                    value = {"_type_": transcoding.name, "_data_": transcoding.encode(value)}
                shallow[key] = value
            if _plain(shallow):
                return self._encoder.encode(shallow)
        return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        """What the library decodes from ``data`` (see the module docstring for the fast path)."""
        envelopes = data.count(_ENVELOPE_KEY)
        if b"\\u" in data:
            return super().decode(data)
        try:
            obj = self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return super().decode(data)
        if type(obj) is not dict or (len(obj) == 2 and "_type_" in obj):
            return obj if not envelopes else super().decode(data)
        found = 0
        if envelopes:
            names = self.names
            try:  # as the library's _decode_obj: the envelope's name, then its transcoding
                for key, value in obj.items():
                    if (type(value) is dict and len(value) == 2 and "_type_" in value
                            and "_data_" in value and type(value["_data_"]) not in (dict, list)):
                        found += 1
                        obj[key] = names[value["_type_"]].decode(value["_data_"])
            except Exception:  # the library raises its own error, in its own order
                return super().decode(data)
        return obj if found == envelopes else super().decode(data)


_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> bool:
    """True when the dict, list or tuple ``value`` holds only the types whose JSON msgspec
    writes as ``json`` does (loops, not generators: this is the hot path)."""
    if type(value) is dict:
        for key in value:
            if type(key) is not str:
                return False
        value = value.values()
    for item in value:
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is dict or kind is list or kind is tuple:
            if not _plain(item):
                return False
        elif kind is not float or not (item == 0.0 or 0.001 <= abs(item) < 1e15):
            return False
    return True
