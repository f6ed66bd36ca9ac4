"""The verdict on one scenario, from what the load saw and what reached the sandbox.

- accepted: events answered 202 (their ids recorded);
- delivered: accepted events the sandbox accepted (202) at least once, with the right key;
- lost: accepted minus delivered, after the drain;
- out of order: accepted arrivals of a dedup key that came after an arrival of a later step
  of the same chain (a repeat of the same step next to itself is allowed: at-least-once);
- over budget: routing keys that received more than their budget in some sliding 60 s window
  by the sandbox's clock (every request counts, whatever its answer), or that the sandbox's
  rate limiter answered 429 even once;
- resent: accepted arrivals beyond the first of each event (sends whose answer was lost to a
  killed process, or requests a sender retried).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from bench.chaos.plan import Step
from bench.chaos.sender import Load
from bench.chaos.watch import ACCEPTED, Arrival

BUDGET_PER_MINUTE = 120  # pd_services.rate_limit_per_minute's default, left as it is
PAGERDUTY_WINDOW = 60.0
THROTTLED = 429


@dataclass(frozen=True)
class Verdict:
    accepted: int
    delivered: int
    lost: int
    out_of_order: int
    over_budget: int
    peak_per_minute: int  # the most requests any key received in a 60 s window
    resent: int


def peak_in_window(times: Iterable[float], window: float = PAGERDUTY_WINDOW) -> int:
    """The most entries in any half-open window (t - window, t], as the sandbox counts."""
    recent: deque[float] = deque()
    peak = 0
    for t in sorted(times):
        recent.append(t)
        while recent[0] <= t - window:
            recent.popleft()
        peak = max(peak, len(recent))
    return peak


def out_of_order(steps: dict[tuple[str, str], Step], arrivals: list[Arrival]) -> int:
    highest: dict[str, int] = {}
    late = 0
    for arrival in arrivals:
        step = _step_of(steps, arrival)
        if step is None or arrival.status != ACCEPTED:
            continue
        if step.rank < highest.get(step.dedup_key, -1):
            late += 1
        highest[step.dedup_key] = max(highest.get(step.dedup_key, -1), step.rank)
    return late


def _step_of(steps: dict[tuple[str, str], Step], arrival: Arrival) -> Step | None:
    if arrival.dedup_key is None or arrival.action is None:
        return None
    step = steps.get((arrival.dedup_key, arrival.action))
    return step if step is not None and step.target.routing_key == arrival.routing_key else None


def judge(load: Load, arrivals: list[Arrival]) -> Verdict:
    arrivals = sorted(arrivals, key=lambda a: a.seq)
    steps = {a.step.key: a.step for a in load.accepted.values()}
    copies: dict[tuple[str, str], int] = defaultdict(int)
    for arrival in arrivals:
        step = _step_of(steps, arrival)
        if step is not None and arrival.status == ACCEPTED:
            copies[step.key] += 1
    delivered = len(copies)
    by_key: dict[str, list[float]] = defaultdict(list)
    throttled: set[str] = set()
    for arrival in arrivals:
        by_key[arrival.routing_key].append(arrival.time)
        if arrival.status == THROTTLED and arrival.fault is None:
            throttled.add(arrival.routing_key)
    peaks = {key: peak_in_window(times) for key, times in by_key.items()}
    over = {key for key, peak in peaks.items() if peak > BUDGET_PER_MINUTE} | throttled
    return Verdict(
        accepted=len(load.accepted),
        delivered=delivered,
        lost=len(load.accepted) - delivered,
        out_of_order=out_of_order(steps, arrivals),
        over_budget=len(over),
        peak_per_minute=max(peaks.values(), default=0),
        resent=sum(copies.values()) - delivered,
    )
