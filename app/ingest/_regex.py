r"""Spotting the regular expressions that can take exponential time.

Python's `re` backtracks and has no timeout, so a tenant's `(a+)+$` against a long label
would hold a worker for ever. Cutting values to 1024 characters does not help: the time is
exponential in the length. We refuse the classic shape, a group repeated more than once that
holds an unbounded repetition (`(a+)+`, `(a*b)*`, `(x+){2,}`); this also refuses a few safe
patterns such as `(\d+\.){3}`, which can be written out instead. Patterns that blow up by
alternation alone (`(a|a)*`) still pass: this is a guard against the common mistake, not a
proof.
"""

from __future__ import annotations

import re

_BRACES = re.compile(r"\{(\d*)(?:,(\d*))?\}")


def _quantifier(pattern: str, i: int) -> tuple[int, bool, bool] | None:
    """The quantifier at `i`, if any: (its length, unbounded, may repeat more than once)."""
    if i >= len(pattern):
        return None
    char = pattern[i]
    if char in "*+":
        length, unbounded, repeats = 1, True, True
    elif char == "?":
        length, unbounded, repeats = 1, False, False
    elif char == "{" and (match := _BRACES.match(pattern, i)) and (match[1] or match[2]):
        low, comma, high = match[1], "," in match[0], match[2]
        length = len(match[0])
        unbounded = comma and not high
        repeats = unbounded or int(high or low or 0) > 1
    else:
        return None
    # A lazy or possessive marker belongs to the quantifier.
    if i + length < len(pattern) and pattern[i + length] in "?+":
        length += 1
    return length, unbounded, repeats


def _skip_class(pattern: str, i: int) -> int:
    """From the `[` at `i` to just past its `]`."""
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def has_nested_repetition(pattern: str) -> bool:
    # One flag per open group: does it hold an unbounded repetition?
    stack: list[bool] = [False]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        inner = False
        if char == "\\":
            i += 2
        elif char == "[":
            i = _skip_class(pattern, i)
        elif char == "(":
            stack.append(False)
            i += 1
            continue
        elif char == ")" and len(stack) > 1:
            inner = stack.pop()
            i += 1
        else:
            i += 1
        found = _quantifier(pattern, i)
        length, unbounded, repeats = found if found else (0, False, False)
        if inner and repeats:
            return True
        stack[-1] = stack[-1] or inner or unbounded
        i += length
    return False
