"""Dispatch throughput: how fast one `pdconnect worker` drains a backlog over many routing keys
when PagerDuty answers at once, against how fast the sandbox takes the same POSTs sent to it
directly with the same concurrency.

    .venv/bin/python -m bench.dispatch [--quick] [--keys 500] [--events-per-key 20]
        [--concurrency 64] [--pagerduty-ms 0]

The world is the chaos harness's (bench.chaos.world): a PostgreSQL of its own, the sandbox as
its own `pdconnect sandbox` process, a `pdconnect serve` without a dispatcher, and a `pdconnect
worker` started once the backlog is in. Every key's budget is raised far above what it gets
(the budget is not what limits), and so is the sandbox's rate limit; the sandbox adds no delay,
unless `--pagerduty-ms` says how long PagerDuty takes to answer: the real one is tens of
milliseconds away, and then a worker's rate is bounded by its sends in flight over that time
(the sandbox's `latency_ms` fault holds every Events API answer that long, the baseline's too).
The events are chains of trigger, acknowledge and resolve per dedup key, as many to each key,
the keys taking turns (bench.chaos.plan), accepted in batches while no dispatcher runs. The
worker's rate is counted from the first arrival at the sandbox to the last, by the sandbox's
clock (the worker's own start-up is left out, and printed apart). Checked: every event
delivered, none out of order within its dedup key, no key over its budget in any 60 s window
and no 429 from the sandbox; the command exits 1 otherwise.

The baseline, in the same run, is this process sending the same number of Events API v2 POSTs
straight to the sandbox, `--concurrency` at a time (the worker's PDCONNECT_DISPATCH_CONCURRENCY)
over as many fresh keys: the ratio reads "pdconnect's dispatch rate / what the sandbox can take".
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import secrets
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import httpx2

from app.config.model import Config
from bench.chaos.audit import Verdict, judge, peak_in_window
from bench.chaos.backlog import BATCH_CLIENTS, KEYS_PER_TENANT, MIN_DRAIN_RATE
from bench.chaos.fleet import Fleet, running_fleet
from bench.chaos.plan import STEPS, Chain, Shape, Target, create_targets, plan_chains
from bench.chaos.sender import Load, send_batches
from bench.chaos.watch import ACCEPTED, Arrival, Watcher
from bench.chaos.world import RunSettings, World, running_world
from bench.cpu import OTHER, CpuMeter
from bench.load import run_benchmark
from bench.report import pct, ratio, table
from bench.stack import SetupError

# Events a minute per key, in pd_services and in the sandbox: far above any key's share of the
# backlog, so neither the dispatcher's budget nor the sandbox's limiter is what sets the pace.
BUDGET_PER_MINUTE = 6000
SANDBOX_RATE_LIMIT = 1_000_000
THROTTLED = 429
LOAD_TIMEOUT = 600.0
DRAIN_TIMEOUT = 300.0
STATS_DELAY = 1.5
EVENTS_PATH = "/us/events/v2/enqueue"
RATE_HEADERS = ("sender", "events", "seconds", "events/s", "ratio")
CHECK_HEADERS = (
    "delivered", "lost", "out of order", "over budget", "429s", "peak/60s per key", "resent",
)  # fmt: skip


@dataclass
class Outcome:
    keys: int = 0
    accepted: int = 0
    load_seconds: float = 0.0
    startup_seconds: float = 0.0  # worker start to first arrival
    drain_seconds: float = 0.0  # first arrival to last, by the sandbox's clock
    drained: bool = False
    verdict: Verdict | None = None
    over_budget: int = 0  # keys
    throttled: int = 0  # 429 answers
    baseline_seconds: float = 0.0
    baseline_failures: dict[str, int] = field(default_factory=dict)
    # Cores each process kept busy from the worker's start to the last arrival, and that span.
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    # PostgreSQL's counters over the same span (pg_stat_database): transactions (each of the
    # dispatcher's statements outside a transaction is one), rows inserted and updated.
    database: dict[str, int] = field(default_factory=dict)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.dispatch", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="50 keys, 4 events each, for smoke tests")
    p.add_argument("--keys", type=int, help="routing keys (services) (500; quick 50)")
    p.add_argument("--events-per-key", type=int, help="events per key (20; quick 4)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("PDCONNECT_DISPATCH_CONCURRENCY", Config.dispatch_concurrency)),
        help="the worker's PDCONNECT_DISPATCH_CONCURRENCY, and the baseline's (64)",
    )
    p.add_argument(
        "--pagerduty-ms",
        type=float,
        default=0.0,
        help="how long the sandbox takes to answer each event, in ms (0: at once)",
    )
    args = p.parse_args(argv)
    if args.keys is None:
        args.keys = 50 if args.quick else 500
    if args.events_per_key is None:
        args.events_per_key = 4 if args.quick else 20
    return args


async def raise_budgets(world: World) -> None:
    """No operator API sets `rate_limit_per_minute`; every service of the run is ours."""
    conn = await asyncpg.connect(world.postgres.url)
    try:
        await conn.execute("UPDATE pd_services SET rate_limit_per_minute = $1", BUDGET_PER_MINUTE)
    finally:
        await conn.close()


async def backlog(
    world: World, fleet: Fleet, watcher: Watcher, args: argparse.Namespace
) -> tuple[Load, list[Chain]]:
    """The chains, accepted while no dispatcher runs."""
    tenants = max(1, math.ceil(args.keys / KEYS_PER_TENANT))
    shape = Shape(
        tenants=tenants,
        services_per_tenant=math.ceil(args.keys / tenants),
        hot_services=0,
        hot_share=0.0,
    )
    url = fleet.webs[0].url
    targets = await create_targets(world.http, url, world.admin_token, shape, "dispatch")
    watcher.routing_keys.update(t.routing_key for t in targets)
    await raise_budgets(world)
    chains = plan_per_key(targets, args.events_per_key, shape)
    total = sum(len(chain) for chain in chains)
    load = Load(total=total)
    deadline = time.monotonic() + LOAD_TIMEOUT
    await send_batches(world.http, url, chains, load=load, clients=BATCH_CLIENTS, deadline=deadline)
    if len(load.accepted) != total:
        raise SetupError(f"only {len(load.accepted)} of {total} events were accepted")
    return load, chains


def plan_per_key(targets: list[Target], per_key: int, shape: Shape) -> list[Chain]:
    """Exactly `per_key` events for each key: rounds in which every key gets one whole chain,
    then, if `per_key` is not a multiple of a chain's length, one round of shorter chains."""
    whole, rest = divmod(per_key, len(STEPS))
    rounds = [len(STEPS)] * whole + ([rest] if rest else [])
    rng = random.Random(0)  # noqa: S311 - unused by an even plan, which plan_chains asks for
    chains: list[Chain] = []
    for steps in rounds:
        events = len(targets) * steps
        first = sum(len(chain) for chain in chains)
        chains += plan_chains(targets, events, shape, rng, first_seq=first, steps=steps, even=True)
    return chains


def over_budget(arrivals: list[Arrival]) -> tuple[int, int]:
    """Keys over BUDGET_PER_MINUTE in some 60 s window (every request counts), and 429s."""
    by_key: dict[str, list[float]] = defaultdict(list)
    throttled = 0
    for arrival in arrivals:
        by_key[arrival.routing_key].append(arrival.time)
        throttled += arrival.status == THROTTLED
    over = sum(peak_in_window(times) > BUDGET_PER_MINUTE for times in by_key.values())
    return over, throttled


async def drain(
    world: World,
    fleet: Fleet,
    watcher: Watcher,
    load: Load,
    args: argparse.Namespace,
    outcome: Outcome,
) -> None:
    """Start the worker and wait until every event has reached the sandbox."""
    # The worker reads its concurrency from its environment, a copy of the world's.
    world.env["PDCONNECT_DISPATCH_CONCURRENCY"] = str(args.concurrency)
    started = time.time()  # the sandbox's clock is the wall clock of this machine
    counted = await database_counters(world)
    worker = await fleet.worker("worker")
    meter = cpu_meter(world, fleet, worker.pids[-1])
    meter.start()
    metered = time.perf_counter()
    wanted = [a.step.key for a in load.accepted.values()]
    within = max(DRAIN_TIMEOUT, len(wanted) / MIN_DRAIN_RATE)
    outcome.drained = await watcher.until_delivered(wanted, within)
    outcome.cpu = meter.stop()
    outcome.cpu_seconds = time.perf_counter() - metered
    # The backends report their counters when a transaction ends, or within a second.
    await asyncio.sleep(STATS_DELAY)
    after = await database_counters(world)
    outcome.database = {name: after[name] - counted[name] for name in after}
    times = [a.time for a in watcher.arrivals if a.status == ACCEPTED]
    if times:
        outcome.startup_seconds = min(times) - started
        outcome.drain_seconds = max(times) - min(times)
    outcome.verdict = judge(load, watcher.arrivals)
    outcome.over_budget, outcome.throttled = over_budget(watcher.arrivals)


async def database_counters(world: World) -> dict[str, int]:
    conn = await asyncpg.connect(world.postgres.url)
    try:
        row = await conn.fetchrow(
            """
            SELECT xact_commit + xact_rollback AS transactions, tup_inserted AS inserted,
                tup_updated AS updated
            FROM pg_stat_database WHERE datname = current_database()
            """
        )
    finally:
        await conn.close()
    assert row is not None
    return {name: int(row[name]) for name in ("transactions", "inserted", "updated")}


def cpu_meter(world: World, fleet: Fleet, worker_pid: int) -> CpuMeter:
    """The worker, the web process beside it (no dispatcher: its upkeep only), the sandbox and
    PostgreSQL with its backends."""
    pids = {"worker": worker_pid, "sandbox": world.sandbox.pid}
    if fleet.webs and fleet.webs[0].pids:
        pids["web"] = fleet.webs[0].pids[-1]
    postgres = world.postgres.processes()
    if postgres:
        pids["postgres"] = int(postgres[0].pid)
    return CpuMeter(pids, trees={"postgres", "sandbox"})


def direct_body(step_action: str, routing_key: str, dedup_key: str, seq: int) -> dict[str, object]:
    body: dict[str, object] = {
        "routing_key": routing_key,
        "event_action": step_action,
        "dedup_key": dedup_key,
    }
    if step_action == "trigger":
        body["payload"] = {
            "summary": f"dispatch baseline {seq}",
            "severity": "warning",
            "source": "bench",
        }
    return body


async def baseline(world: World, chains: list[Chain], concurrency: int, outcome: Outcome) -> None:
    """The same chains' events POSTed straight to the sandbox, each chain's steps in order, by
    `concurrency` senders over fresh keys (one per key of the run)."""
    fresh = {key: secrets.token_hex(16) for key in {c[0].target.routing_key for c in chains}}
    queue = iter(chains)
    failures: dict[str, int] = defaultdict(int)
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(timeout=30.0, limits=limits) as http:

        async def sender() -> None:
            for chain in queue:  # shared: each chain goes to exactly one sender
                for step in chain:
                    key = fresh[step.target.routing_key]
                    body = direct_body(step.action, key, f"direct-{step.dedup_key}", step.seq)
                    try:
                        response = await http.post(f"{world.sandbox_url}{EVENTS_PATH}", json=body)
                        code = str(response.status_code)
                    except httpx2.HTTPError as exc:
                        code = type(exc).__name__
                    if code != str(ACCEPTED):
                        failures[code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        outcome.baseline_seconds = time.perf_counter() - started
    outcome.baseline_failures = dict(failures)


async def measure(args: argparse.Namespace, outcome: Outcome) -> None:
    async with running_world(RunSettings()) as world:
        await world.sandbox_call(
            "POST", "/_sandbox/control", {"default_rate_limit": SANDBOX_RATE_LIMIT}
        )
        if args.pagerduty_ms:
            await world.sandbox_call("POST", "/_sandbox/faults", {"latency_ms": args.pagerduty_ms})
        async with running_fleet(world) as fleet:
            await fleet.web("web", dispatcher=False)
            async with Watcher(world.http, world.sandbox_url, set()) as watcher:
                started = time.monotonic()
                load, chains = await backlog(world, fleet, watcher, args)
                outcome.accepted = len(load.accepted)
                outcome.keys = len({chain[0].target.routing_key for chain in chains})
                outcome.load_seconds = time.monotonic() - started
                print(f"{outcome.accepted} events accepted", file=sys.stderr, flush=True)
                await drain(world, fleet, watcher, load, args, outcome)
            print("drained; sending the baseline", file=sys.stderr, flush=True)
            await baseline(world, chains, args.concurrency, outcome)


def report(outcome: Outcome, args: argparse.Namespace, load: tuple[float, ...]) -> str:
    v = outcome.verdict
    n = outcome.accepted
    direct = n / outcome.baseline_seconds if outcome.baseline_seconds else None
    ours = n / outcome.drain_seconds if outcome.drain_seconds and outcome.drained else None
    rates: list[list[object]] = [
        ["sandbox, POSTed directly (baseline)", n, f"{outcome.baseline_seconds:.1f}",
         _rate(direct), "1.00x"],
        ["pdconnect worker, first to last arrival", n if outcome.drained else "-",
         f"{outcome.drain_seconds:.1f}", _rate(ours), ratio(ours, direct)],
    ]  # fmt: skip
    title = (
        f"Dispatch: {n} events over {outcome.keys} routing keys ({args.events_per_key} a key, in "
        f"trigger/acknowledge/resolve chains), one worker, concurrency "
        f"{args.concurrency}; the sandbox answering "
        + (f"after {args.pagerduty_ms:g} ms" if args.pagerduty_ms else "at once")
    )
    lines = [table(title, RATE_HEADERS, rates)]
    if v is not None:
        checks = [[v.delivered, v.lost, v.out_of_order, outcome.over_budget, outcome.throttled,
                   v.peak_per_minute, v.resent]]  # fmt: skip
        lines.append(table("Checks", CHECK_HEADERS, checks, left=0))
    if outcome.cpu:
        lines.append(cpu_report(outcome))
    lines += [
        f"backlog accepted in {outcome.load_seconds:.1f} s with no dispatcher running; the "
        f"worker's first delivery came {outcome.startup_seconds:.1f} s after it was started",
        f"budget {BUDGET_PER_MINUTE}/min per key (pd_services) and {SANDBOX_RATE_LIMIT}/min in "
        "the sandbox: not what limits (over budget counts keys above it in a 60 s window)",
        f"baseline failures: {outcome.baseline_failures or 'none'}",
        f"load average (1, 5, 15 min): before {_load(load)}, after {_load(os.getloadavg())}",
    ]
    if not outcome.drained:
        lines.append("NOT DRAINED: the worker had not delivered every event in time")
    return "\n".join(lines)


def cpu_report(outcome: Outcome) -> str:
    """Cores each process kept busy while the worker drained, and its CPU per event: on a
    shared machine the rate moves with the neighbours' load, the CPU an event costs less."""
    parties = [p for p in outcome.cpu if p != OTHER] + [OTHER]
    n = outcome.accepted
    busy = [pct(outcome.cpu[p]) for p in parties]
    per_event = [
        "-" if p == OTHER else f"{outcome.cpu[p] * outcome.cpu_seconds / n * 1e6:.0f}"
        for p in parties
    ]
    cpu = table(
        f"CPU while the worker drained ({outcome.cpu_seconds:.1f} s from its start)",
        ["", *parties],
        [["% of one core", *busy], ["CPU us per event", *per_event]],
        left=1,
    )
    if not outcome.database:
        return cpu
    work = outcome.database
    return "\n".join([
        cpu,
        f"PostgreSQL per event over the drain (every process's): "
        f"{work['transactions'] / n:.2f} transactions (statements outside one), "
        f"{work['updated'] / n:.2f} rows updated, {work['inserted'] / n:.2f} inserted",
    ])  # fmt: skip


def problems(outcome: Outcome) -> bool:
    v = outcome.verdict
    return (
        v is None
        or not outcome.drained
        or v.lost > 0
        or v.out_of_order > 0
        or outcome.over_budget > 0
        or outcome.throttled > 0
    )


def _rate(per_second: float | None) -> str:
    return "-" if per_second is None else f"{per_second:.0f}"


def _load(load: tuple[float, ...]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load = os.getloadavg()
    outcome = Outcome()
    code = run_benchmark(lambda: measure(args, outcome))
    if outcome.accepted:
        print(report(outcome, args, load))
    if code == 0 and problems(outcome):
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
