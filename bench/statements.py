"""Where PostgreSQL's time goes, statement by statement, for a few seconds of a benchmark's load.

For the window, the server logs every statement with its duration (`log_min_duration_statement
= 0`, parameters left out), and the lines are summed by statement and step: for a prepared
statement, `bind` (where a custom plan is made, when the server keeps making them) and
`execute`; `statement` for the simple protocol (BEGIN, COMMIT). The durations are the server's
wall time: waits for locks and for the WAL flush count (a COMMIT's is mostly that), the round
trips to the client do not. Logging every statement costs the server something itself: a run
that prints this table is for seeing where the time goes, not for its other figures.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.report import table

# A line that starts an entry of the server's log (its default prefix: time, zone, pid).
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[\d+\] \w+:  (.*)$")
_DURATION = re.compile(r"^duration: ([\d.]+) ms  (parse|bind|execute|statement)([^:]*): ?(.*)$")
# What the window turns on, and back off (RESET) after it: every statement's duration, without
# its parameters (an event's body is one).
LOGGING = ("log_min_duration_statement", "log_parameter_max_length")
# How much of a statement's text names it in the table.
TEXT_CHARS = 100
ROWS = 12


@dataclass(frozen=True)
class StatementTime:
    step: str  # parse, bind, execute, or statement (the simple protocol)
    text: str
    count: int
    ms: float


def _entries(lines: Iterable[str]) -> Iterable[str]:
    """The log's entries, each with its continuation lines (a statement's text goes on over
    lines that start with a tab) joined to it."""
    entry: list[str] | None = None
    for line in lines:
        start = _ENTRY.match(line)
        if start:
            if entry is not None:
                yield " ".join(entry)
            entry = [start.group(1)]
        elif entry is not None and line.startswith("\t"):
            entry.append(line.strip())
        # Anything else (a line the server wrote without its prefix) is left out.
    if entry is not None:
        yield " ".join(entry)


def summed(lines: Iterable[str]) -> list[StatementTime]:
    """The durations in `lines` (the server's log), summed by step and statement, the most
    time first."""
    totals: dict[tuple[str, str], tuple[int, float]] = {}
    for entry in _entries(lines):
        found = _DURATION.match(entry)
        if not found:
            continue
        ms, step, name, text = float(found[1]), found[2], found[3].strip(), found[4]
        words = " ".join(text.split()) or name
        key = (step, words[:TEXT_CHARS])
        count, total = totals.get(key, (0, 0.0))
        totals[key] = (count + 1, total + ms)
    rows = [StatementTime(step, text, n, ms) for (step, text), (n, ms) in totals.items()]
    return sorted(rows, key=lambda r: r.ms, reverse=True)


async def logged(database_url: str, log: Path, seconds: float) -> list[StatementTime]:
    """Every statement the server runs for `seconds`, summed; `log` is the server's log file
    (the embedded server's `<data dir>/postgres/log`)."""
    conn = await asyncpg.connect(database_url)
    try:
        start = await asyncio.to_thread(lambda: log.stat().st_size)
        await _set(conn, [(name, "0") for name in LOGGING])
        try:
            await asyncio.sleep(seconds)
        finally:
            await _set(conn, [(name, None) for name in LOGGING])
    finally:
        await conn.close()
    return await asyncio.to_thread(_read_from, log, start)


def _read_from(log: Path, start: int) -> list[StatementTime]:
    with log.open(encoding="utf-8", errors="replace") as text:
        text.seek(start)
        return summed(text)


async def _set(conn: asyncpg.Connection, settings: Sequence[tuple[str, str | None]]) -> None:
    # ALTER SYSTEM takes no parameters: the names and values are this module's constants.
    for name, value in settings:
        if value is None:
            await conn.execute(f"ALTER SYSTEM RESET {name}")
        else:
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    await conn.execute("SELECT pg_reload_conf()")


def statements_table(rows: Sequence[StatementTime], seconds: float) -> str:
    total = sum(r.ms for r in rows) or 1.0
    return table(
        f"PostgreSQL statements over {seconds:g} s of the load (the server's wall time, "
        f"{total:.0f} ms in all; the {min(ROWS, len(rows))} that took most)",
        ["step", "statement", "ms", "share", "count", "mean us"],
        [
            [
                r.step,
                r.text,
                f"{r.ms:.1f}",
                f"{100 * r.ms / total:.1f}%",
                str(r.count),
                f"{1000 * r.ms / r.count:.0f}",
            ]
            for r in rows[:ROWS]
        ],
        left=2,
    )
