"""(e) and (f): one routing key goes bad while the others carry on.

(e) A hanging key beside healthy ones. Tenant A sends 3 alerts a second to one routing key
    (more than its budget of 2 a second, as a storm does), tenant B one alert a second to
    another; each alert is a trigger with a dedup key of its own. After a warm-up A's key goes
    bad for `hang_seconds`: the sandbox holds each of its requests without answering for the
    first half, then answers each only after 20 s for the second half (it takes the event
    then, long after the client gave up); then the key is healthy again. B's time to page,
    from the 202 of its alert to its arrival at the sandbox (one machine, one clock), is
    measured for every alert B sent: its p99 must stay within 1 s. A's events all arrive
    afterwards.
(f) An answer that outlives the lease. Every request that reaches one key during a window gets
    its answer trickled: status and headers at once, then one byte every half second (each well
    inside any read timeout) for `trickle_seconds`, longer than the dispatcher's 30 s lease.
    The sandbox has taken the event, so a sender that gives up and sends again makes copies
    (allowed), and a stale sender that still changes the event after its lease has passed
    could send an old step after a newer one (counted as out of order). The key gets chains at
    one step a second, ten other keys a background of chains at five steps a second.
"""

from __future__ import annotations

import asyncio
import time

from bench.chaos.audit import BUDGET_PER_MINUTE
from bench.chaos.context import Context
from bench.chaos.plan import Chain, Shape, Target, plan_chains
from bench.chaos.sender import Load, send_load
from bench.chaos.watch import ACCEPTED

WARMUP_SECONDS = 3.0  # of load before the key goes bad
TAIL_SECONDS = 3.0  # of load after it is healthy again
A_RATE = 3.0  # (e) alerts a second to the hanging key
B_RATE = 1.0  # (e) alerts a second to the healthy key
SLOW_ANSWER_MS = 20_000  # (e) the second half of the fault
TRICKLED_KEY_RATE = 1.0  # (f)
BACKGROUND_RATE = 5.0  # (f)
BACKGROUND_KEYS = 10  # (f)
TRICKLE_EVERY_MS = 500  # (f)
ONE_KEY = Shape(tenants=1, services_per_tenant=1, hot_services=0, hot_share=0.0)


async def _send(ctx: Context, chains: list[Chain], rate: float, clients: int) -> None:
    await send_load(
        ctx.world.http,
        [w.url for w in ctx.fleet.webs],
        chains,
        load=ctx.load,
        clients=clients,
        rate=rate,
        deadline=time.monotonic() + ctx.size.load_timeout,
    )


async def hanging_key(ctx: Context) -> None:
    size = ctx.size
    (a,) = await ctx.targets(ONE_KEY, "e-A")
    (b,) = await ctx.targets(ONE_KEY, "e-B")
    # The sandbox counts an event in its rate window when it processes it, and a request held
    # 20 s is processed 20 s after it arrived: its limiter would see windows the product could
    # not. The audit still holds A's key to its budget, in windows of arrival.
    limits = {"rate_limits": {a.routing_key: 2 * BUDGET_PER_MINUTE}}
    await ctx.world.sandbox_call("POST", "/_sandbox/control", limits)
    span = WARMUP_SECONDS + size.hang_seconds + TAIL_SECONDS
    a_events, b_events = round(A_RATE * span), round(B_RATE * span)
    rng = ctx.rng
    a_chains = plan_chains([a], a_events, ONE_KEY, rng, steps=1)
    b_chains = plan_chains([b], b_events, ONE_KEY, rng, first_seq=a_events, steps=1)
    ctx.load = Load(total=a_events + b_events)

    async def go_bad() -> None:
        await asyncio.sleep(WARMUP_SECONDS)
        try:
            await ctx.key_faults(a.routing_key, {"hang": True})
            await asyncio.sleep(size.hang_seconds / 2)
            await ctx.key_faults(a.routing_key, {"hang": False, "latency_ms": SLOW_ANSWER_MS})
            await asyncio.sleep(size.hang_seconds / 2)
        finally:
            await ctx.key_faults(a.routing_key, None)

    async with asyncio.TaskGroup() as group:
        group.create_task(_send(ctx, a_chains, A_RATE, clients=2))
        group.create_task(_send(ctx, b_chains, B_RATE, clients=2))
        group.create_task(go_bad())
    ctx.page_times = await _times_to_page(ctx, b)
    ctx.notes.append(
        f"tenant A's key hung {size.hang_seconds / 2:g} s, then answered after "
        f"{SLOW_ANSWER_MS / 1000:g} s for {size.hang_seconds / 2:g} s, while A sent "
        f"{A_RATE:g} alerts/s; tenant B sent {B_RATE:g} alert/s to a healthy key: "
        f"{len(ctx.page_times)} times to page measured"
    )


async def _times_to_page(ctx: Context, target: Target) -> list[float]:
    """From each accepted alert's 202 to its first accepted arrival at the sandbox."""
    mine = [a for a in ctx.load.accepted.values() if a.step.target == target]
    await ctx.watcher.until_delivered([a.step.key for a in mine], ctx.size.drain_timeout)
    first: dict[tuple[str, str], float] = {}
    for arrival in sorted(ctx.watcher.arrivals, key=lambda a: a.seq):
        if arrival.routing_key != target.routing_key or arrival.status != ACCEPTED:
            continue
        if arrival.dedup_key is not None and arrival.action is not None:
            first.setdefault((arrival.dedup_key, arrival.action), arrival.time)
    # The dispatcher may send before the 202 is read here: that is no time at all.
    return [max(first[a.step.key] - a.answered_at, 0.0) for a in mine if a.step.key in first]


async def lease_outlived(ctx: Context) -> None:
    size = ctx.size
    (slow,) = await ctx.targets(ONE_KEY, "f-slow")
    background = Shape(
        tenants=1, services_per_tenant=BACKGROUND_KEYS, hot_services=0, hot_share=0.0
    )
    others = await ctx.targets(background, "f-others")
    span = WARMUP_SECONDS + size.trickle_window + TAIL_SECONDS
    slow_events, other_events = round(TRICKLED_KEY_RATE * span), round(BACKGROUND_RATE * span)
    rng = ctx.rng
    slow_chains = plan_chains([slow], slow_events, ONE_KEY, rng)
    other_chains = plan_chains(others, other_events, background, rng, first_seq=slow_events)
    ctx.load = Load(total=slow_events + other_events)
    trickle = {"seconds": size.trickle_seconds, "every_ms": TRICKLE_EVERY_MS}

    async def go_slow() -> None:
        await asyncio.sleep(WARMUP_SECONDS)
        try:
            await ctx.key_faults(slow.routing_key, {"trickle": trickle})
            await asyncio.sleep(size.trickle_window)
        finally:
            await ctx.key_faults(slow.routing_key, None)

    async with asyncio.TaskGroup() as group:
        group.create_task(_send(ctx, slow_chains, TRICKLED_KEY_RATE, clients=2))
        group.create_task(_send(ctx, other_chains, BACKGROUND_RATE, clients=4))
        group.create_task(go_slow())
    ctx.notes.append(
        f"for {size.trickle_window:g} s one key's answers trickled a byte every "
        f"{TRICKLE_EVERY_MS} ms for {size.trickle_seconds:g} s each (the lease is 30 s)"
    )
