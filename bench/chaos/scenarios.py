"""The four scenarios, each a fleet of real pdconnect processes under load while something
breaks, then a drain, then the verdict (bench.chaos.audit) and the checks that the product
came back by itself.

(a) killed: SIGKILL of the web process (which also dispatches) and of the worker during the
    load; each is started again a second later, as a supervisor would.
(b) database: PostgreSQL stopped hard (immediate mode, a crash as far as clients can tell)
    for some seconds mid-load, then started; no pdconnect process is restarted.
(c) PagerDuty down: every Events API request answered 502 or held past the client's timeout
    for the outage, then PagerDuty is back.
(d) scaled out: two web processes (no dispatcher) and two workers share the load.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from app.dispatch.worker import LISTENER_NAME
from bench.chaos.audit import Verdict, judge
from bench.chaos.fleet import Fleet, running_fleet
from bench.chaos.plan import create_targets, plan_chains
from bench.chaos.sender import Load, send_load
from bench.chaos.sizes import Size
from bench.chaos.watch import Watcher
from bench.chaos.world import World
from bench.stack import tail

SUPERVISOR_DELAY = 1.0  # between a process dying and its restart
KILLS = ((0.25, "web"), (0.5, "worker"), (0.75, "web"))  # (share of the load accepted, victim)
DB_DOWN_AT = 0.3
OUTAGE_AT = 0.2
# An outage answers 502, or holds the request past the dispatcher's 10 s timeout.
OUTAGE_FAULTS = {"error_rate": 1.0, "error_status": 502, "timeout_rate": 0.2, "timeout_seconds": 15}


@dataclass
class Outcome:
    scenario: str
    verdict: Verdict
    load: Load
    seconds: float
    phantoms: int  # accepted event ids the database does not have
    restarts: int  # processes the scenario killed and started again
    restarts_unplanned: int  # processes that died or were replaced without the scenario's say
    listeners: tuple[int, int]  # LISTEN connections at the end / dispatcher processes
    unavailable_while_down: int  # (b): 503s answered while PostgreSQL was stopped
    faulted: int  # requests the sandbox answered with an injected fault
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        v, found = self.verdict, []
        for name, value in (
            ("lost", v.lost),
            ("out of order", v.out_of_order),
            ("over budget", v.over_budget),
            ("202 without a committed event", self.phantoms),
            ("5xx other than 503", self.load.other_5xx),
            ("503 without Retry-After", self.load.no_retry_after),
            ("events never accepted", self.load.abandoned),
            ("processes died or restarted unplanned", self.restarts_unplanned),
        ):
            if value:
                found.append(f"{name}: {value}")
        if self.listeners[0] != self.listeners[1]:
            found.append(f"LISTEN connections: {self.listeners[0]} of {self.listeners[1]}")
        return found


@dataclass
class Context:
    world: World
    fleet: Fleet
    load: Load
    size: Size
    notes: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)  # by process name
    unavailable_while_down: int = 0


Disruption = Callable[[Context], Coroutine[Any, Any, None]]
Topology = Callable[[Fleet], Awaitable[None]]


async def one_web_one_worker(fleet: Fleet) -> None:
    await fleet.web("web")
    await fleet.worker("worker")


async def two_webs_two_workers(fleet: Fleet) -> None:
    await fleet.web("web-1", dispatcher=False)
    await fleet.web("web-2", dispatcher=False)
    await fleet.worker("worker-1")
    await fleet.worker("worker-2")


async def kill_and_restart(ctx: Context) -> None:
    by_name = {p.name: p for p in ctx.fleet.processes}
    for share, name in KILLS:
        await ctx.load.reached(share)
        await ctx.fleet.kill(by_name[name])
        await asyncio.sleep(SUPERVISOR_DELAY)
        await ctx.fleet.start(by_name[name])
        ctx.restarts[name] = ctx.restarts.get(name, 0) + 1
    kills = ", ".join(f"{name} at {share:.0%}" for share, name in KILLS)
    ctx.notes.append(f"SIGKILL of the {kills} of the load; each started again")


async def restart_database(ctx: Context) -> None:
    await ctx.load.reached(DB_DOWN_AT)
    before = ctx.load.unavailable
    postgres = ctx.world.postgres
    await asyncio.to_thread(postgres.stop, "immediate")
    await asyncio.sleep(ctx.size.db_down_seconds)
    ctx.unavailable_while_down = ctx.load.unavailable - before
    await asyncio.to_thread(postgres.start)
    ctx.notes.append(
        f"PostgreSQL down {ctx.size.db_down_seconds:g} s from {DB_DOWN_AT:.0%} of the load; "
        f"503s while down: {ctx.unavailable_while_down}"
    )


async def pagerduty_outage(ctx: Context) -> None:
    await ctx.load.reached(OUTAGE_AT)
    try:
        await ctx.world.sandbox_call("POST", "/_sandbox/faults", OUTAGE_FAULTS)
        await asyncio.sleep(ctx.size.outage_seconds)
    finally:
        await ctx.world.sandbox_call("DELETE", "/_sandbox/faults")
    ctx.notes.append(
        f"PagerDuty down {ctx.size.outage_seconds:g} s from {OUTAGE_AT:.0%} of the load "
        "(502s, and a fifth of the requests held past the timeout)"
    )


async def no_disruption(ctx: Context) -> None:
    return None


SCENARIOS: dict[str, tuple[str, Topology, Disruption]] = {
    "a": ("(a) SIGKILL web + worker", one_web_one_worker, kill_and_restart),
    "b": ("(b) PostgreSQL restart", one_web_one_worker, restart_database),
    "c": ("(c) PagerDuty down", one_web_one_worker, pagerduty_outage),
    "d": ("(d) 2 web + 2 workers", two_webs_two_workers, no_disruption),
}


async def run_scenario(world: World, size: Size, letter: str, *, seed: int = 0) -> Outcome:
    title, topology, disruption = SCENARIOS[letter]
    started = time.monotonic()
    async with running_fleet(world) as fleet:
        await topology(fleet)
        shape = size.shape if letter in size.hot_in else replace(size.shape, hot_services=0)
        targets = await create_targets(
            world.http, fleet.webs[0].url, world.admin_token, shape, letter
        )
        chains = plan_chains(targets, size.events, shape, random.Random(seed))  # noqa: S311
        keys = frozenset(t.routing_key for t in targets)
        async with Watcher(world.http, world.sandbox_url, keys) as watcher:
            ctx = Context(world=world, fleet=fleet, load=Load(total=size.events), size=size)
            disrupting = asyncio.create_task(disruption(ctx))
            await send_load(
                world.http,
                [w.url for w in fleet.webs],
                chains,
                load=ctx.load,
                clients=size.clients,
                rate=size.rate,
                deadline=time.monotonic() + size.load_timeout,
            )
            await disrupting
            wanted = [a.step.key for a in ctx.load.accepted.values()]
            if not await watcher.until_delivered(wanted, size.drain_timeout):
                ctx.notes.append(f"the drain timed out after {size.drain_timeout:g} s")
            verdict = judge(ctx.load, watcher.arrivals)
            faulted = sum(a.fault is not None for a in watcher.arrivals)
            if faulted:
                ctx.notes.append(f"requests the outage answered: {faulted}")
        phantoms, listeners = await _database_checks(world, ctx.load)
        unplanned = 0
        for process in fleet.processes:
            unplanned += len(process.pids) - 1 - ctx.restarts.get(process.name, 0)
            if not process.alive():
                unplanned += 1
                ctx.notes.append(f"{process.name} exited; its log ends:\n{tail(process.log, 25)}")
        return Outcome(
            scenario=title,
            verdict=verdict,
            load=ctx.load,
            seconds=time.monotonic() - started,
            phantoms=phantoms,
            restarts=sum(ctx.restarts.values()),
            restarts_unplanned=unplanned,
            listeners=(listeners, fleet.dispatchers()),
            unavailable_while_down=ctx.unavailable_while_down,
            faulted=faulted,
            notes=ctx.notes,
        )


async def _database_checks(world: World, load: Load) -> tuple[int, int]:
    """Accepted event ids missing from the outbox, and the dispatchers' LISTEN connections."""
    conn = await asyncpg.connect(world.postgres.url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM events WHERE id = ANY($1::uuid[])",
            [a.event_id for a in load.accepted.values()],
        )
        listeners = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", LISTENER_NAME
        )
    finally:
        await conn.close()
    return len(load.accepted) - int(found), int(listeners)
