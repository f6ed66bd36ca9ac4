"""Strategies shared by the parser fuzz tests: JSON as senders really write it (every code
point, lone surrogates and NUL included, since JSON's \\u escapes allow both; numbers past
64 bits; NaN and Infinity, which Python's json module reads), text our parsers must accept,
ISO 8601 times, and the tools to break one field of a valid body at a time."""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"


def examples(count: int) -> settings:
    """`count` examples in CI; a deep run by hand tries twenty times as many."""
    return settings(max_examples=count * 20 if DEEP else count)


Path = tuple[str | int, ...]

# Values that broke parsers elsewhere, or sit right at a limit.
NASTY_STRINGS = (
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202eevil",
    "😀" * 300,
    "a" * 1025,
    "a" * 5000,
    "null",
    "NaN",
    "(a+)+$",
    "https://",
    "2026-02-30T00:00:00Z",
    "pdc_",
)
NASTY_NUMBERS = (2**63, 2**64, -(2**63) - 1, 2**64 + 1, 10**400, -(10**400), 1e308, -0.0)

any_char = st.characters(exclude_categories=())
# Text a parser must take: no NUL (PostgreSQL refuses it), no lone surrogate (not UTF-8).
clean_char = st.characters(codec="utf-8", exclude_characters="\x00")


def clean_text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    return st.text(clean_char, min_size=min_size, max_size=max_size)


def words(max_size: int = 40) -> st.SearchStrategy[str]:
    """Non-blank clean text: what a required field must hold."""
    return clean_text(1, max_size).filter(lambda s: s.strip() != "")


nasty_text = st.one_of(
    st.text(max_size=30),
    st.text(any_char, max_size=12),
    st.sampled_from(NASTY_STRINGS),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(NASTY_NUMBERS),
    st.floats(),
    nasty_text,
)


def json_values(keys: st.SearchStrategy[str] = nasty_text) -> st.SearchStrategy[Any]:
    """Any JSON value json.loads can return, keys drawn from `keys`."""
    return st.recursive(
        json_leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=10,
    )


# What a parser must copy through unchanged: finite numbers within 64 bits, clean text.
strict_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    clean_text(),
)
strict_json = st.recursive(
    strict_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text(), inner, max_size=4),
    max_leaves=10,
)
strict_objects = st.dictionaries(clean_text(), strict_json, max_size=4)


def nested(depth: int, leaf: Any = "x") -> Any:
    """A value nested `depth` lists deep, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --- Times ----------------------------------------------------------------------------------

offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    """A date and time as ISO 8601 writes it, in the spellings senders use."""
    when = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)))
    text = when.strftime("%Y-%m-%d") + draw(st.sampled_from("T ")) + when.strftime("%H:%M")
    if draw(st.booleans()):
        text += when.strftime(":%S")
        if draw(st.booleans()):
            text += "." + draw(st.text("0123456789", min_size=1, max_size=9))
    zone = draw(st.sampled_from(("Z", "offset", "compact", "none")))
    if zone == "Z":
        return text + "Z"
    if zone == "none":
        return text
    minutes = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    sign, size = ("-" if minutes < 0 else "+"), abs(minutes)
    separator = ":" if zone == "offset" else ""
    return f"{text}{sign}{size // 60:02d}{separator}{size % 60:02d}"


aware_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)


# --- Breaking one field ---------------------------------------------------------------------


def render(path: Path) -> str:
    """`("alerts", 0, "labels", "team")` as the parsers name it: `alerts[0].labels.team`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def leaf_paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path inside a JSON value, containers included."""
    children: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    out: list[Path] = []
    for key, item in children:
        path = (*prefix, key)
        out.append(path)
        out.extend(leaf_paths(item, path))
    return out


def get_at(body: Any, path: Path) -> Any:
    for part in path:
        body = body[part]
    return body


def set_at(body: Any, path: Path, value: Any) -> Any:
    """A copy of `body` with the value at `path` replaced."""
    out = copy.deepcopy(body)
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


def other_type(value: Any) -> st.SearchStrategy[Any]:
    """A non-null JSON value of another type than `value`: what a wrong field holds."""
    scalars: list[st.SearchStrategy[Any]] = [
        st.booleans(),
        st.integers(),
        st.floats(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.text(max_size=5),
    ]
    kinds = (bool, int, float, list, dict, str)
    # bool is an int to isinstance; compare exact types so True never stands in for a number.
    return st.one_of(
        *(s for s, kind in zip(scalars, kinds, strict=True) if type(value) is not kind)
    )


@st.composite
def broken(draw: st.DrawFn, body: Any) -> Any:
    """`body` with one to three of its values replaced by any JSON value, or removed."""
    for _ in range(draw(st.integers(1, 3))):
        paths = leaf_paths(body)
        if not paths:
            return draw(json_values())
        path = draw(st.sampled_from(paths))
        parent = get_at(body, path[:-1])
        if isinstance(parent, dict) and draw(st.booleans()):
            body = copy.deepcopy(body)
            del get_at(body, path[:-1])[path[-1]]
        else:
            body = set_at(body, path, draw(json_values()))
    return body
