"""The geometry of the settings page's bar charts, drawn as SVG by the template: pure numbers
here, no markup, so the page needs no script and no charting library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.analytics.windows import PAGE_BOUNDS

WIDTH = 720
HEIGHT = 180
# Room under the bars for their labels, and left of them for the scale.
AXIS = 22
GUTTER = 36
# Above the top guide line its label, right of the last bar its label's second half.
TOP = 14
RIGHT = 24


@dataclass(frozen=True)
class BarShape:
    x: float
    y: float
    width: float
    height: float
    value: int
    # What the bar stands for, as a person reads it ("14:00", "Mon 3", "≤ 15 ms").
    label: str
    # Shown under the bar: not every bar's label fits.
    show_label: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: int
    bars: list[BarShape]
    # Horizontal guide lines: (y, value).
    ticks: list[tuple[float, int]]
    baseline: float


def _scale_top(largest: int) -> int:
    """A round top for the scale: 1, 2, 5, 10, 20, 50…, at least the largest bar."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= largest:
                return step * magnitude
        magnitude *= 10


def bar_chart(values: Sequence[tuple[str, int]], *, labels_shown: int = 8) -> Chart:
    top = _scale_top(max((v for _, v in values), default=0))
    plot_height = HEIGHT - AXIS - TOP
    plot_width = WIDTH - GUTTER - RIGHT
    slot = plot_width / max(len(values), 1)
    every = max(1, -(-len(values) // labels_shown))
    bars = []
    for i, (label, value) in enumerate(values):
        height = plot_height * value / top if top else 0.0
        bars.append(
            BarShape(
                x=round(GUTTER + i * slot + slot * 0.1, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(slot * 0.8, 2),
                height=round(height, 2),
                value=value,
                label=label,
                show_label=(len(values) - 1 - i) % every == 0,
            )
        )
    ticks = [(round(TOP + plot_height * (1 - f), 2), round(top * f)) for f in (0.5, 1.0)]
    return Chart(
        width=WIDTH, height=HEIGHT, top=top, bars=bars, ticks=ticks, baseline=TOP + plot_height
    )


def duration(seconds: float | None) -> str:
    """A duration as people say it: 12 ms, 2.5 s, 4 min, 1.5 h."""
    if seconds is None:
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"


def page_histogram(buckets: dict[int, int]) -> list[tuple[str, int]]:
    """Time to page's buckets from the first with events to the last, each labelled by its
    upper bound ("≤ 15 ms"; the last, open one "> 1 d")."""
    used = [b for b, n in buckets.items() if n]
    if not used:
        return []
    shown = []
    for bucket in range(min(used), max(used) + 1):
        if bucket < len(PAGE_BOUNDS):
            label = f"≤ {duration(PAGE_BOUNDS[bucket])}"
        else:
            label = f"> {duration(PAGE_BOUNDS[-1])}"
        shown.append((label, buckets.get(bucket, 0)))
    return shown
