"""Percentiles and the small tables every benchmark prints."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (a value that was actually observed), None for no values.

    Nearest rank rather than interpolation: with a few hundred samples p99 is then one of
    the slowest real samples, not a blend of two."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def mib(nbytes: int | None) -> str:
    return "-" if nbytes is None else f"{nbytes / (1024 * 1024):.1f}"


def pct(cores: float) -> str:
    """CPU use as a percentage of one core."""
    return f"{cores * 100:.0f}%"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1
) -> str:
    """A plain-text table: the first `left` columns left-aligned, the figures right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def row_widths(row: Sequence[str]) -> list[tuple[str, int]]:
        return list(zip(row, widths, strict=True))

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i < left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(parts).rstrip()

    rule = "-" * max(len(line(row)) for row in cells)
    out = [title, rule, line(cells[0]), rule, *(line(r) for r in cells[1:]), rule]
    return "\n".join(out)
