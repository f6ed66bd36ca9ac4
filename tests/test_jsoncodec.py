"""The hot paths' JSON (app/jsoncodec.py) means what the standard library's means: the same
values read, the same errors, the same bytes written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.jsoncodec import dumps_bound, dumps_compact, dumps_text, loads, strict_copy

READ = [
    b'{"summary": "disk full", "labels": {"a": "b"}, "n": [1, 2.5, -3e5, true, null]}',
    '{"text": "caf\u00e9 \u2028 \U0001f600"}'.encode(),
    b'{"escaped": "\\u00e9\\ud83d\\ude00\\n"}',
    # Integers past 64 bits stay integers (orjson would read them as floats).
    b'{"big": 123456789012345678901234567890, "low": -9223372036854775809}',
    b'{"edge": 9223372036854775807, "uedge": 18446744073709551615}',
    # What only `json` accepts: NaN and infinities, a lone surrogate, UTF-16 with its BOM.
    b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'{"lone": "\\ud800"}',
    '{"utf16": "\u00e9"}'.encode("utf-16"),
    b'{"dup": 1, "dup": 2}',
    b'  [1, {"x": {}}]  ',
]


@pytest.mark.parametrize("raw", READ)
def test_loads_reads_what_json_reads(raw: bytes) -> None:
    assert repr(loads(raw)) == repr(json.loads(raw))


BROKEN = [b'{"a": 1', b"\xff", b"", b"[1,]", b'{"a" 1}', b"[" * 5000, b"nul"]


@pytest.mark.parametrize("raw", BROKEN)
def test_loads_refuses_what_json_refuses_in_its_words(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)) as theirs:
        json.loads(raw)
    with pytest.raises(type(theirs.value)) as ours:
        loads(raw)
    assert str(ours.value) == str(theirs.value)


WRITTEN: list[Any] = [
    {"events": [{"id": "3f1c", "dedup_key": "k\u00e9\u2028\x7f\x00\"\\/", "service": None}]},
    {"status": "success", "message": "Event processed", "dedup_key": "x" * 300},
    {"big": 2**70, "n": [1, -2, True, False, None]},
    {"lone": "\ud800"},
    {1: "a non-string key"},
]


@pytest.mark.parametrize("value", WRITTEN)
def test_dumps_compact_writes_the_bytes_json_writes(value: Any) -> None:
    try:
        expected: bytes | type[Exception] = json.dumps(
            value, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
    except UnicodeEncodeError:
        expected = UnicodeEncodeError
    if expected is UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            dumps_compact(value)
    else:
        assert dumps_compact(value) == expected


@pytest.mark.parametrize("value", WRITTEN)
def test_dumps_text_describes_the_document_json_describes(value: Any) -> None:
    assert json.loads(dumps_text(value)) == json.loads(json.dumps(value))


COPIED: list[Any] = [
    *WRITTEN,
    {"labels": {"alertname": "HighLatency"}, "n": [1.5, 1e16, -2.5e-300, None]},
    {"nan": float("nan")},
    {"deep": [{"inf": float("-inf")}]},
    {"when": datetime(2026, 12, 7, tzinfo=UTC)},
    {"t": ("a", 1)},
]


@pytest.mark.parametrize("value", COPIED)
def test_strict_copy_is_jsons_round_trip(value: Any) -> None:
    try:
        expected: Any = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            strict_copy(value)
        return
    copied = strict_copy(value)
    assert repr(copied) == repr(expected)


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_VALUES)
def test_dumps_bound_is_never_below_what_json_writes(value: Any) -> None:
    bound = dumps_bound(value)
    try:
        written = len(json.dumps(value))
    except (TypeError, ValueError):
        return
    if bound is not None:
        assert bound >= written
