r"""Tenants' regular expressions, compiled and matched with RE2.

Python's `re` backtracks and has no timeout: a tenant's `^(a|a)*b$` against a 30-character
label held the event loop, and with it every tenant's ingest and `/healthz`, for a minute. RE2
matches in time linear in the input and refuses, when compiling, whatever it cannot match that
way (backreferences, lookarounds, possessive quantifiers, atomic groups…). Its error names the
construct only tersely (`invalid perl operator: (?=`); `RegexRefused` says what it is and that
rules use RE2 syntax.

Linear is not free: the constant is the size of the compiled program, which counted
repetitions inflate (`(x*y*z*){1000}q` compiles to 6 000 instructions and one search of 1 KiB of
`x` takes some 50 ms). `Regex.work` is an upper bound of one search's cost in those units
(instructions times bytes) that the caller's budget spends, and `MAX_MEM` bounds the program.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

import re2

# RE2's default (8 MiB) is sized for a few programs per process; we keep `CACHE_SIZE` tenants'
# patterns at once. 256 KiB holds programs up to some 12 000 instructions (any plain pattern of
# 200 characters is far below) and the lazily built DFA that makes ordinary searches fast. A
# larger program is refused as too large.
MAX_MEM = 256 * 1024
CACHE_SIZE = 1024
# One unit of `work` costs at most about 8 ns (measured: RE2's NFA, which it falls back to when
# its DFA runs out of memory, on a program of 6 000 instructions); a call costs as much as
# scanning this many units, whatever the input.
CALL_WORK = 100
# Compiling costs a base of up to some 110 µs (measured), and about 0.2 µs per instruction of
# the program on top (1.2 ms for 6 000); both with room to spare.
COMPILE_WORK = 15_000
COMPILE_WORK_PER_INSTRUCTION = 100


class RegexRefused(ValueError):
    """A pattern RE2 cannot take; `message` says why, for the rule's field."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def options(max_mem: int = MAX_MEM) -> Any:
    """RE2's options for routing patterns (a Set of them takes a larger `max_mem`)."""
    made = re2.Options()
    made.max_mem = max_mem
    # Refusals are answered to the tenant; RE2 would also print each one to stderr.
    made.log_errors = False
    # Routing asks only whether a pattern matches: without groups to fill, RE2 can use its DFA.
    made.never_capture = True
    return made


_OPTIONS = options()
_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED


class Regex:
    """A compiled pattern: `search` answers whether it matches anywhere in the value."""

    __slots__ = ("_compile_work", "_program", "pattern", "size")

    def __init__(self, pattern: str) -> None:
        try:
            compiled = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            raise RegexRefused(_explain(pattern, _message(exc))) from exc
        except (UnicodeEncodeError, TypeError) as exc:
            raise RegexRefused("is not valid Unicode text") from exc
        self.pattern = pattern
        # The binding's program object: its `Match` releases the GIL while it scans and skips
        # the wrapper's match objects (half the cost of a short search), and it tells the
        # program's size, which the wrapper does not.
        self._program = compiled._regexp
        self.size = int(self._program.ProgramSize())
        self._compile_work = COMPILE_WORK + COMPILE_WORK_PER_INSTRUCTION * self.size

    def take_compile_work(self) -> int:
        """What compiling cost, the first time it is asked (the search that compiled it pays
        for it; the cached pattern is then free)."""
        work, self._compile_work = self._compile_work, 0
        return work

    def work(self, value: bytes) -> int:
        """An upper bound of what searching `value` costs, in budget units."""
        return CALL_WORK + self.size * (len(value) + 1)

    def search(self, value: bytes) -> bool:
        spans = self._program.Match(_UNANCHORED, value, 0, len(value))
        return bool(spans[0][0] >= 0)


def encode(value: str) -> bytes:
    """A value as RE2 reads it (UTF-8). A lone surrogate cannot be UTF-8: it goes through as
    its three bytes, which RE2 reads as one character that no letter class matches, instead of
    failing the alert."""
    return value.encode("utf-8", "surrogatepass")


# The last CACHE_SIZE patterns compiled, least recently used first. Routing threads and the
# event loop share it, hence the lock (held for dictionary work only, never while compiling).
_cache: OrderedDict[str, Regex | RegexRefused] = OrderedDict()
_cache_lock = threading.Lock()


def compiled(pattern: str) -> Regex | RegexRefused:
    """The pattern compiled, or why not (kept too: a stored pattern that RE2 refuses is asked
    for on every alert, and must cost a lookup, not a compile)."""
    found = already_compiled(pattern)
    if found is not None:
        return found
    try:
        made: Regex | RegexRefused = Regex(pattern)
    except RegexRefused as refused:
        made = refused
    with _cache_lock:
        _cache[pattern] = made
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return made


def already_compiled(pattern: str) -> Regex | RegexRefused | None:
    """The pattern from the cache, or None if it would have to be compiled: matching on the
    event loop must not compile (a large pattern takes milliseconds)."""
    with _cache_lock:
        found = _cache.get(pattern)
        if found is not None:
            _cache.move_to_end(pattern)
        return found


def _message(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


_WHAT = "is not supported: rules use RE2 syntax"
_GROUPS = {
    "(?=": "lookahead (?=…)",
    "(?!": "negative lookahead (?!…)",
    "(?<=": "lookbehind (?<=…)",
    "(?<!": "negative lookbehind (?<!…)",
    "(?>": "atomic group (?>…)",
    "(?#": "comment (?#…)",
    "(?|": "branch reset (?|…)",
    "(?R": "recursion (?R)",
    "(?P=": "backreference (?P=name)",
    "(?P>": "recursion (?P>name)",
}
_BACKREFERENCE = re.compile(r"\\[1-9]")
# Escapes RE2 knows, that it refuses only where they cannot stand (a class as a range's end).
_KNOWN_ESCAPES = frozenset("dDwWsSbBpPAzCQE")


def _explain(pattern: str, message: str) -> str:
    kind, _, fragment = message.partition(": ")
    if kind == "invalid perl operator":
        if fragment == "(?P":
            # RE2 quotes `(?P` alone for both `(?P=name)` and `(?P>name)`.
            fragment = "(?P=" if "(?P=" in pattern else "(?P>" if "(?P>" in pattern else fragment
        for prefix, name in _GROUPS.items():
            if fragment.startswith(prefix):
                return f"{name} {_WHAT}"
        if fragment[2:3].isalpha():
            return f"flag {fragment}) {_WHAT}, whose flags are i, m, s and U"
        return f"group {fragment}…) {_WHAT}"
    if kind == "invalid escape sequence":
        if _BACKREFERENCE.fullmatch(fragment) or fragment in ("\\k", "\\g"):
            return f"backreference {fragment} {_WHAT}"
        if fragment == "\\Z":
            return f"\\Z {_WHAT}; write \\z for the end of the text"
        if fragment[1:] not in _KNOWN_ESCAPES:
            return f"escape {fragment} {_WHAT}"
    if kind == "bad repetition operator":
        if fragment.endswith("+") and len(fragment) > 1:
            return f"possessive quantifier {fragment} {_WHAT}"
        return f"a repetition of a repetition, {fragment}, {_WHAT}; group the inner one"
    if kind == "invalid repetition size":
        return (
            f"repetition {fragment} is out of range: a count goes up to 1000, multiplied "
            "through nested repetitions"
        )
    if kind.startswith("pattern too large"):
        return (
            "is too large: compiled, it needs more memory than a rule may use; "
            "use smaller counted repetitions"
        )
    return f"is not a valid regular expression: {message}"
