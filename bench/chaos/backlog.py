"""(i) A backlog: many events over many routing keys are accepted while no dispatcher runs
(the web process has none, and no worker is started yet), then one worker is started and the
drain is timed, from its start to the last event's arrival at the sandbox. The events go in as
batches (`sender.send_batches`) so that the backlog builds fast, and the keys take turns, so
each key's share stays within its budget (120 a minute): the drain is the dispatcher's own pace.
Only correctness is checked here; the drain time is printed. The drain may take as long as
the backlog needs at MIN_DRAIN_RATE, if that is longer than the size's drain timeout.
"""

from __future__ import annotations

import math
import time

from bench.chaos.context import Context
from bench.chaos.fleet import Fleet
from bench.chaos.plan import Shape, plan_chains
from bench.chaos.sender import Load, send_batches

KEYS_PER_TENANT = 100
BATCH_CLIENTS = 2
MIN_DRAIN_RATE = 20.0  # events a second: the slowest drain waited for


async def dispatcher_after_load(fleet: Fleet) -> None:
    """A web process without a dispatcher; the scenario starts the worker itself."""
    await fleet.web("web", dispatcher=False)


async def backlog(ctx: Context) -> None:
    size = ctx.size
    tenants = max(1, math.ceil(size.backlog_keys / KEYS_PER_TENANT))
    shape = Shape(
        tenants=tenants,
        services_per_tenant=math.ceil(size.backlog_keys / tenants),
        hot_services=0,
        hot_share=0.0,
    )
    targets = await ctx.targets(shape, "i")
    chains = plan_chains(targets, size.backlog_events, shape, ctx.rng, even=True)
    ctx.load = Load(total=size.backlog_events)
    started = time.monotonic()
    await send_batches(
        ctx.world.http,
        ctx.fleet.webs[0].url,
        chains,
        load=ctx.load,
        clients=BATCH_CLIENTS,
        deadline=started + size.load_timeout,
    )
    loaded = time.monotonic() - started
    await ctx.fleet.worker("worker")
    started = time.monotonic()
    wanted = [a.step.key for a in ctx.load.accepted.values()]
    within = max(size.drain_timeout, len(wanted) / MIN_DRAIN_RATE)
    drained = await ctx.watcher.until_delivered(wanted, within)
    seconds = time.monotonic() - started
    accepted = len(ctx.load.accepted)
    head = (
        f"backlog of {accepted} events over {len(targets)} keys accepted in {loaded:.0f} s "
        "with no dispatcher running; "
    )
    if drained:
        ctx.notes.append(
            head + f"one worker drained it in {seconds:.0f} s ({accepted / seconds:.0f} events/s)"
        )
    else:
        ctx.notes.append(head + f"one worker had not drained it after {seconds:.0f} s")
