"""JSON on the hot paths, with the standard library's meaning and orjson's speed.

An ingested alert is decoded once and encoded several times (its event's body for the outbox,
its life, the answer); with the standard `json` module that was one of the largest costs of an
ingest request. orjson does the same work several times faster, but it draws a few lines where
`json` does not: it reads an integer past 64 bits as a float, refuses NaN, UTF-16 and lone
surrogates, and writes NaN as null. So each function here tries orjson and, where orjson would
differ, does exactly what `json` would have done: what is accepted, what is refused and every
error message stay the standard library's.

Log lines stay with `json` (app/observability/logs.py): orjson writes no space after a
separator, and readers of the log look for `"key": "value"`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Text as `json` writes with ensure_ascii=False and compact separators; one encoder, made once.
_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# A run of digits as long as the longest 64-bit integer's: orjson would read such an integer
# as a float. (A run inside a string or a fraction only costs the slower decoder.)
_LONG_DIGITS = re.compile(rb"\d{19}")


def loads(raw: bytes) -> Any:
    """`json.loads(raw)`: the same values, the same errors."""
    if _LONG_DIGITS.search(raw):
        return json.loads(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Invalid, or valid in `json`'s eyes only (NaN, a huge integer, a lone surrogate,
        # UTF-16): `json` says which, in its own words.
        return json.loads(raw)


def dumps_text(value: Any) -> str:
    """JSON text of `value` for PostgreSQL to parse (a jsonb parameter): the document
    `json.dumps(value)` describes. For values already held to strict JSON (the outbox's bodies
    and notes, alerts' lives: app/ingest/mapping.py refuses NaN and infinities on the way in),
    where orjson's one silent difference, NaN written as null, cannot arise."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def dumps_compact(value: Any) -> bytes:
    """`json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))` in
    UTF-8, byte for byte, for answers made of strings, integers and nulls (ids, keys,
    statuses), where orjson writes exactly that."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _COMPACT.encode(value).encode("utf-8")


# orjson writes datetimes and dataclasses, which `json` refuses: left to `json`, they are refused.
_ONLY_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def strict_copy(value: Any) -> Any:
    """`json.loads(json.dumps(value, allow_nan=False))`: a deep copy as plain JSON values, or
    the ValueError or TypeError that call raises. orjson makes the copy unless its text holds
    a `null`, which is where it would have written a NaN or an infinity that `json` refuses
    (a real null is rare in an alert's details, and is copied the slow way)."""
    try:
        text = orjson.dumps(value, option=_ONLY_JSON)
    except TypeError:
        # An integer past 64 bits, a key that is not a string: `json` says what it makes of it.
        return json.loads(json.dumps(value, allow_nan=False))
    if b"null" in text:
        return json.loads(json.dumps(value, allow_nan=False))
    return orjson.loads(text)


def dumps_bound(value: Any) -> int | None:
    """At least `len(json.dumps(value))` (ASCII with `\\u` escapes, a space after each separator),
    cheap to get: three times orjson's compact UTF-8. No character costs `json` more than three
    times what it costs orjson (a two-byte UTF-8 character is a six-byte escape; a separator
    gains a space; a float may gain its exponent's sign, as in 1e+16). None when orjson cannot
    encode the value."""
    try:
        return 3 * len(orjson.dumps(value, option=_ONLY_JSON))
    except TypeError:
        return None
