"""The chaos harness's verdict can fail: a lost event, a resolve that overtakes its trigger,
a key sent more than its budget in a minute, and a 429 from PagerDuty's limiter each show."""

from __future__ import annotations

from bench.chaos.audit import BUDGET_PER_MINUTE, judge
from bench.chaos.plan import STEPS, Step, Target, Tenant
from bench.chaos.sender import Accepted, Load
from bench.chaos.watch import Arrival

KEY = "k" * 32
TARGET = Target(
    tenant=Tenant(id="t", ingest_key="pdc_x"), service="svc", routing_key=KEY, hot=False
)


def chain(dedup_key: str, first_seq: int = 0) -> list[Step]:
    return [
        Step(first_seq + rank, dedup_key, status, action, rank, TARGET)
        for rank, (status, action) in enumerate(STEPS)
    ]


def accepted(steps: list[Step]) -> Load:
    load = Load(total=len(steps))
    load.accepted = {s.seq: Accepted(s, f"id-{s.seq}") for s in steps}
    return load


def arrival(seq: int, step: Step, *, status: int = 202, at: float | None = None) -> Arrival:
    time = float(seq) if at is None else at
    return Arrival(seq, time, KEY, step.dedup_key, step.action, status, fault=None)


def test_every_event_delivered_once_in_order_is_clean() -> None:
    steps = chain("a")
    verdict = judge(accepted(steps), [arrival(i, s) for i, s in enumerate(steps)])
    assert verdict.delivered == 3
    assert verdict.lost == verdict.out_of_order == verdict.over_budget == verdict.resent == 0


def test_an_event_that_never_arrived_is_lost() -> None:
    trigger, acknowledge, resolve = chain("a")
    arrivals = [arrival(1, trigger), arrival(2, acknowledge, status=502), arrival(3, resolve)]
    assert judge(accepted([trigger, acknowledge, resolve]), arrivals).lost == 1


def test_a_resolve_before_its_trigger_is_out_of_order_but_a_repeat_is_not() -> None:
    trigger, acknowledge, resolve = chain("a")
    steps = [trigger, acknowledge, resolve]
    repeated = [
        arrival(1, trigger),
        arrival(2, trigger),
        arrival(3, acknowledge),
        arrival(4, resolve),
    ]
    assert judge(accepted(steps), repeated).out_of_order == 0
    assert judge(accepted(steps), repeated).resent == 1
    overtaken = [arrival(1, acknowledge), arrival(2, trigger), arrival(3, resolve)]
    assert judge(accepted(steps), overtaken).out_of_order == 1


def test_more_than_the_budget_in_60_seconds_or_a_429_is_over_budget() -> None:
    steps = [s for n in range(BUDGET_PER_MINUTE) for s in chain(f"d{n}", 3 * n)]
    within_budget = [arrival(i, s, at=i * 0.5) for i, s in enumerate(steps)]
    # 360 requests, 120 in every 60 s window: at the budget, not over it.
    assert judge(accepted(steps), within_budget).over_budget == 0
    crowded = [arrival(i, s, at=i * 0.49) for i, s in enumerate(steps)]
    assert judge(accepted(steps), crowded).over_budget == 1
    throttled = [*within_budget, arrival(len(steps), steps[0], status=429, at=1000.0)]
    assert judge(accepted(steps), throttled).over_budget == 1
