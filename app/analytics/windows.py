"""The windows figures are read over, and the fixed histogram bounds of time to page."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.errors import InputError


@dataclass(frozen=True)
class Window:
    name: str
    # The chart's bars: hours for a day, days for a week or a month (UTC).
    unit: str
    bars: int

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.unit == "hour" else timedelta(days=1)

    def start(self, now: datetime) -> datetime:
        """The first bar's start: the window holds the current hour (or day) and the ones
        before it, whole, so a bar never shows part of an hour."""
        if self.unit == "hour":
            current = now.replace(minute=0, second=0, microsecond=0)
        else:
            current = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return current - self.step * (self.bars - 1)


WINDOWS: Mapping[str, Window] = {
    "24h": Window("24h", "hour", 24),
    "7d": Window("7d", "day", 7),
    "30d": Window("30d", "day", 30),
}
DEFAULT_WINDOW = "24h"


def parse_window(value: str | None) -> Window:
    if value is None or value == "":
        return WINDOWS[DEFAULT_WINDOW]
    window = WINDOWS.get(value)
    if window is None:
        raise InputError("window", f"must be one of {', '.join(WINDOWS)}", status=400)
    return window


# Time to page, in seconds: bucket 0 is below the first bound, bucket i holds
# [BOUNDS[i-1], BOUNDS[i]), the last everything from the last bound on (PostgreSQL's
# width_bucket numbering). About 1.5x apart from 5 ms to a day: a percentile read from them is
# within a bucket's width of the true one, and they never change (stored buckets would lose
# their meaning).
PAGE_BOUNDS: tuple[float, ...] = (
    0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0,
    300.0, 450.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
)  # fmt: skip


def bucket_of(seconds: float) -> int:
    """The bucket PostgreSQL's width_bucket gives `seconds` against PAGE_BOUNDS."""
    return bisect_right(PAGE_BOUNDS, seconds)


def percentile(buckets: Mapping[int, int], fraction: float) -> float | None:
    """The value below which `fraction` of the counted events lie, interpolated inside its
    bucket (the last, open-ended bucket answers its lower bound). None without events."""
    total = sum(buckets.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for bucket in sorted(buckets):
        count = buckets[bucket]
        if count == 0:
            continue
        if seen + count >= rank:
            low = PAGE_BOUNDS[bucket - 1] if bucket > 0 else 0.0
            if bucket >= len(PAGE_BOUNDS):
                return low
            high = PAGE_BOUNDS[bucket]
            return low + (high - low) * max(rank - seen, 0.0) / count
        seen += count
    return PAGE_BOUNDS[-1]
