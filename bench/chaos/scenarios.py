"""The scenarios, each a fleet of real pdconnect processes under load while something breaks,
then a drain, then the verdict (bench.chaos.audit) and the checks that the product came back
by itself.

(a) killed: SIGKILL of the web process (which also dispatches) and of the worker during the
    load; each is started again a second later, as a supervisor would.
(b) database: PostgreSQL stopped hard (immediate mode, a crash as far as clients can tell)
    for some seconds mid-load, then started; no pdconnect process is restarted.
(c) PagerDuty down: every Events API request answered 502 or held past the client's timeout
    for the outage, then PagerDuty is back.
(d) scaled out: two web processes (no dispatcher) and two workers share the load.
(e) a hanging routing key beside healthy ones, (f) an answer that outlives the lease: see
    bench/chaos/isolation.py.
(g) PostgreSQL killed: SIGKILL to the postmaster and all its processes mid-load (a lost node
    or a killed container), started again after some seconds (crash recovery).
(h) PostgreSQL frozen: SIGSTOP to all its processes for some seconds (a paused VM: sockets stay
    open, nothing answers), then SIGCONT.
(i) a backlog of many events over many keys, then a dispatcher: see bench/chaos/backlog.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

from app.dispatch.worker import LISTENER_NAME
from bench.chaos.audit import Verdict, judge
from bench.chaos.backlog import backlog, dispatcher_after_load
from bench.chaos.context import (
    Context,
    Scenario,
    one_web_one_worker,
    steady_load,
    two_webs_two_workers,
)
from bench.chaos.fleet import running_fleet
from bench.chaos.isolation import hanging_key, lease_outlived
from bench.chaos.sender import Load
from bench.chaos.sizes import Size
from bench.chaos.watch import Watcher
from bench.chaos.world import World
from bench.report import percentile
from bench.stack import tail

SUPERVISOR_DELAY = 1.0  # between a process dying and its restart
KILLS = ((0.25, "web"), (0.5, "worker"), (0.75, "web"))  # (share of the load accepted, victim)
DB_DOWN_AT = 0.3
OUTAGE_AT = 0.2
# An outage answers 502, or holds the request past the dispatcher's 10 s timeout.
OUTAGE_FAULTS = {"error_rate": 1.0, "error_status": 502, "timeout_rate": 0.2, "timeout_seconds": 15}
# (e): a healthy tenant's time to page (from its 202 to PagerDuty's arrival) must stay under
# this at p99 while another tenant's key hangs.
PAGE_P99_LIMIT = 1.0
# After the drain, for the sandbox's held requests to get their answers (the longest injected
# wait is 20 s) before the verdict.
SETTLE_SECONDS = 60.0


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
    # (e): the healthy tenant's times to page, seconds; None where not measured.
    page_times: list[float] | None = None

    def page(self, pct: float) -> float | None:
        return percentile(self.page_times or [], pct)

    def problems(self) -> list[str]:
        v, found = self.verdict, []
        for name, value in (
            ("lost", v.lost),
            ("out of order", v.out_of_order),
            ("over budget", v.over_budget),
            ("202 without a committed event", self.phantoms),
            ("500s", self.load.internal_errors),
            ("5xx other than 500 and 503", self.load.other_5xx - self.load.internal_errors),
            ("503 without Retry-After", self.load.no_retry_after),
            ("events never accepted", self.load.abandoned),
            ("processes died or restarted unplanned", self.restarts_unplanned),
        ):
            if value:
                found.append(f"{name}: {value}")
        if self.listeners[0] != self.listeners[1]:
            found.append(f"LISTEN connections: {self.listeners[0]} of {self.listeners[1]}")
        if self.page_times is not None:
            p99 = self.page(99)
            if p99 is None:
                found.append("no time to page measured")
            elif p99 > PAGE_P99_LIMIT:
                found.append(
                    f"the healthy tenant's p99 time to page is {p99:.2f} s "
                    f"(at most {PAGE_P99_LIMIT:g} s)"
                )
        return found


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


async def kill_database(ctx: Context) -> None:
    await ctx.load.reached(DB_DOWN_AT)
    before = ctx.load.unavailable
    postgres = ctx.world.postgres
    killed = await asyncio.to_thread(postgres.kill)
    await asyncio.sleep(ctx.size.db_down_seconds)
    ctx.unavailable_while_down = ctx.load.unavailable - before
    await asyncio.to_thread(postgres.start)
    ctx.notes.append(
        f"SIGKILL of PostgreSQL ({killed} processes) at {DB_DOWN_AT:.0%} of the load, started "
        f"again {ctx.size.db_down_seconds:g} s later; 503s while down: "
        f"{ctx.unavailable_while_down}"
    )


async def freeze_database(ctx: Context) -> None:
    await ctx.load.reached(DB_DOWN_AT)
    before = ctx.load.unavailable
    postgres = ctx.world.postgres
    frozen = await asyncio.to_thread(postgres.freeze)
    try:
        await asyncio.sleep(ctx.size.db_down_seconds)
    finally:
        postgres.thaw(frozen)
    ctx.unavailable_while_down = ctx.load.unavailable - before
    ctx.notes.append(
        f"SIGSTOP of PostgreSQL ({len(frozen)} processes) at {DB_DOWN_AT:.0%} of the load, "
        f"SIGCONT {ctx.size.db_down_seconds:g} s later; 503s while frozen: "
        f"{ctx.unavailable_while_down}"
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


SCENARIOS: dict[str, Scenario] = {
    "a": Scenario("(a) SIGKILL web + worker", one_web_one_worker, steady_load(kill_and_restart)),
    "b": Scenario("(b) PostgreSQL restart", one_web_one_worker, steady_load(restart_database)),
    "c": Scenario("(c) PagerDuty down", one_web_one_worker, steady_load(pagerduty_outage)),
    "d": Scenario("(d) 2 web + 2 workers", two_webs_two_workers, steady_load(no_disruption)),
    "e": Scenario("(e) hanging key beside healthy", one_web_one_worker, hanging_key),
    "f": Scenario("(f) answer outlives the lease", one_web_one_worker, lease_outlived),
    "g": Scenario("(g) PostgreSQL SIGKILL", one_web_one_worker, steady_load(kill_database)),
    "h": Scenario("(h) PostgreSQL SIGSTOP", one_web_one_worker, steady_load(freeze_database)),
    "i": Scenario("(i) backlog drain", dispatcher_after_load, backlog),
}


async def run_scenario(world: World, size: Size, letter: str, *, seed: int = 0) -> Outcome:
    scenario = SCENARIOS[letter]
    started = time.monotonic()
    async with running_fleet(world) as fleet:
        await scenario.topology(fleet)
        async with Watcher(world.http, world.sandbox_url, set()) as watcher:
            ctx = Context(
                world=world, fleet=fleet, watcher=watcher, size=size, letter=letter, seed=seed
            )
            await scenario.run(ctx)
            wanted = [a.step.key for a in ctx.load.accepted.values()]
            if not await watcher.until_delivered(wanted, size.drain_timeout):
                ctx.notes.append(f"the drain timed out after {size.drain_timeout:g} s")
            if not await watcher.settled(SETTLE_SECONDS):
                ctx.notes.append(f"requests still held by the sandbox after {SETTLE_SECONDS:g} s")
            verdict = judge(ctx.load, watcher.arrivals)
            faulted = sum(a.fault is not None for a in watcher.arrivals)
            if faulted:
                ctx.notes.append(f"requests answered with an injected fault: {faulted}")
        if set(ctx.load.answers) - {"202"}:
            answers = ", ".join(f"{code} {n}" for code, n in sorted(ctx.load.answers.items()))
            ctx.notes.append(
                f"ingest answers: {answers}; slowest {ctx.load.slowest:.1f} s (cut off included)"
            )
        phantoms, listeners = await _database_checks(world, ctx.load)
        unplanned = 0
        for process in fleet.processes:
            unplanned += len(process.pids) - 1 - ctx.restarts.get(process.name, 0)
            if not process.alive():
                unplanned += 1
                ctx.notes.append(f"{process.name} exited; its log ends:\n{tail(process.log, 25)}")
        return Outcome(
            scenario=scenario.title,
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
            page_times=ctx.page_times,
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
