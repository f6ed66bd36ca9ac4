"""Time to page, p50/p99: from the 202 of POST /v1/alerts to the event's arrival at the
sandbox, (a) idle: one alert at a time with pauses, and (b) under load: the same while other
tenants stream alerts to other routing keys, each key well within its budget (so the figure
is pdconnect's own delay, never a budget wait).

The sandbox has only 23 Events API v2 integration keys, too few to carry the background at
PagerDuty's default 120 events a minute per key; so the background keys get a larger budget
(BACKGROUND_BUDGET), and the sandbox a matching per-key limit. The probe keys keep both
defaults.

    .venv/bin/python -m bench.time_to_page [--quick] [--probes 200] [--rate 40]
        [--separate-worker] [--statements SECONDS]

`serve` runs its dispatcher as a `pdconnect worker` child process. `--separate-worker` runs
one started on its own instead, beside a `serve` without one (PDCONNECT_RUN_DISPATCHER=0), as
deploy/ runs them: the same two processes, started the way production starts them.

The background stream is sent by bench/rawpost.py (hand-written HTTP/1.1 over kept-alive
connections), not by an HTTP client library: at 500 alerts/s httpx2 took about 40 % of a core
of this machine, the same CPU the server, the dispatcher and PostgreSQL need; the raw one
takes about a third of that.

`--statements SECONDS` adds where PostgreSQL's time went, statement by statement, over that
many seconds of the loaded phase (bench/statements.py); logging every statement slows the
server a little, so that run's other figures are not the ones to quote.

At a --rate the default budget cannot carry (600 a minute over 16 keys is about 140 alerts/s),
the background keys get a budget sized to it instead (background_budget).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx2

from bench.arrivals import ArrivalWatcher
from bench.cpu import cpu_table
from bench.load import encode, run_benchmark
from bench.probe import SUMMARY_HEADERS, Probe, Summary, probe, summarize
from bench.rawpost import PostError, RawPoster
from bench.report import percentile, ratio, table
from bench.stack import (
    Service,
    Stack,
    Tenant,
    add_service,
    alert,
    create_tenant,
    running_stack,
    sandbox_routing_keys,
    set_budget,
    set_sandbox_key_limits,
)
from bench.statements import StatementTime, logged, statements_table

PROBE_KEYS = 4  # probes take turns over these, so no key comes near its budget
PROBE_PAUSE = 0.25  # seconds between one probe's arrival and the next probe
BACKGROUND_TENANTS = 4
# Events a minute per background key, in pdconnect and the sandbox: at least this, more when
# --rate needs it (background_budget), so the stream never waits for a budget.
BACKGROUND_BUDGET = 600
BUDGET_WINDOW = 62  # seconds: the dispatcher's window (DispatchConfig.budget_window)
# Background keys are kept under this share of their budget.
BUDGET_SHARE = 0.9
MAX_IN_FLIGHT = 64
ALERTS_PATH = "/v1/alerts"
WARMUP_SECONDS = 3.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.time_to_page", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run for smoke tests")
    p.add_argument("--probes", type=int, default=None, help="alerts timed per phase (200)")
    p.add_argument("--rate", type=float, default=None, help="background alerts/s (40)")
    p.add_argument(
        "--keys-per-tenant", type=int, default=None, help="background keys per tenant (4)"
    )
    p.add_argument(
        "--separate-worker",
        action="store_true",
        help="the dispatcher in a `pdconnect worker` of its own beside a web-only `serve`",
    )
    p.add_argument(
        "--statements",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also sum PostgreSQL's statements over this many seconds of the load (0: not)",
    )
    args = p.parse_args(argv)
    args.probes = args.probes or (20 if args.quick else 200)
    args.rate = args.rate or (20.0 if args.quick else 40.0)
    args.keys_per_tenant = args.keys_per_tenant or (2 if args.quick else 4)
    return args


@dataclass
class Background:
    """An open-loop stream: alerts are sent on a fixed schedule whether or not earlier ones
    have been answered (up to MAX_IN_FLIGHT at once; beyond that a tick is skipped)."""

    targets: list[tuple[Tenant, str]]  # (tenant, service name), taken in turn
    rate: float
    prefix: str
    accepted: dict[str, float] = field(default_factory=dict)  # dedup key -> 202 time
    failures: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    started: float = 0.0
    stopped: float = 0.0

    async def run(self, poster: RawPoster, stop: asyncio.Event) -> None:
        # Each tenant's request head, prepared once (bench/rawpost.py: the client's own CPU
        # would otherwise be what the machine runs short of).
        heads = {tenant.id: poster.head(ALERTS_PATH, tenant.auth) for tenant, _ in self.targets}
        in_flight: set[asyncio.Task[None]] = set()
        self.started = time.perf_counter()
        due = self.started
        sequence = 0
        while not stop.is_set():
            if len(in_flight) >= MAX_IN_FLIGHT:
                self.skipped += 1
            else:
                task = asyncio.create_task(self._send(poster, heads, sequence))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            sequence += 1
            due += 1 / self.rate
            await asyncio.sleep(max(due - time.perf_counter(), 0))
        self.stopped = time.perf_counter()
        if in_flight:
            await asyncio.wait(in_flight)

    async def _send(self, poster: RawPoster, heads: dict[str, bytes], sequence: int) -> None:
        tenant, service = self.targets[sequence % len(self.targets)]
        dedup_key = f"{self.prefix}-{sequence}"
        body = encode(alert(dedup_key, service=service))
        try:
            status = await poster.post(heads[tenant.id], body)
        except PostError:
            self.failures["no answer"] += 1
            return
        # The same clock as the probes' and the sandbox's (bench/probe.py).
        answered = time.time()
        if status == 202:
            self.accepted[dedup_key] = answered
        else:
            self.failures[f"HTTP {status}"] += 1

    @property
    def achieved_rate(self) -> float:
        elapsed = self.stopped - self.started
        return len(self.accepted) / elapsed if elapsed > 0 else 0.0


async def run_probes(
    http: httpx2.AsyncClient,
    stack: Stack,
    watcher: ArrivalWatcher,
    tenant: Tenant,
    services: list[str],
    count: int,
    prefix: str,
) -> list[Probe]:
    probes = []
    for i in range(count):
        probes.append(
            await probe(
                http,
                stack.web_url,
                watcher,
                tenant,
                f"{prefix}-{i}",
                service=services[i % len(services)],
            )
        )
        await asyncio.sleep(PROBE_PAUSE)
    return probes


@dataclass
class Setup:
    prober: Tenant
    probe_services: list[str]
    targets: list[tuple[Tenant, str]]  # background (tenant, service name) pairs


def background_budget(args: argparse.Namespace) -> int:
    """The background keys' budget a minute: BACKGROUND_BUDGET, or enough for --rate to stay
    under BUDGET_SHARE of it in any window of the dispatcher's (BUDGET_WINDOW seconds)."""
    rate: float = args.rate
    keys: int = BACKGROUND_TENANTS * args.keys_per_tenant
    per_key_per_second = rate / keys
    needed = per_key_per_second * BUDGET_WINDOW / BUDGET_SHARE
    return max(BACKGROUND_BUDGET, math.ceil(needed))


async def set_up(
    http: httpx2.AsyncClient, stack: Stack, keys_per_tenant: int, budget: int
) -> Setup:
    keys = await sandbox_routing_keys(
        http, stack, PROBE_KEYS + BACKGROUND_TENANTS * keys_per_tenant
    )
    prober = await create_tenant(http, stack, "probe")
    probe_services = [f"probe-{i}" for i in range(PROBE_KEYS)]
    for name, key in zip(probe_services, keys, strict=False):
        await add_service(http, stack, prober, name, key)
    targets: list[tuple[Tenant, str]] = []
    background_services: list[Service] = []
    spare = iter(keys[PROBE_KEYS:])
    for t in range(BACKGROUND_TENANTS):
        tenant = await create_tenant(http, stack, f"background-{t}")
        for s in range(keys_per_tenant):
            name = f"bg-{t}-{s}"
            background_services.append(await add_service(http, stack, tenant, name, next(spare)))
            targets.append((tenant, name))
    # No operator API sets a budget: set_budget writes pd_services.rate_limit_per_minute.
    await set_budget(stack, background_services, budget)
    await set_sandbox_key_limits(http, stack, [s.routing_key for s in background_services], budget)
    return Setup(prober, probe_services, targets)


@dataclass
class Results:
    idle: list[Probe]
    loaded: list[Probe]
    background: Background
    background_ttp: list[float]
    cpu: dict[str, dict[str, float]]  # phase -> party -> cores
    statuses: dict[int | None, int]
    statements: list[StatementTime] = field(default_factory=list)


async def measure(args: argparse.Namespace) -> None:
    settings = {"PDCONNECT_RUN_DISPATCHER": "0"} if args.separate_worker else None
    with running_stack(settings) as stack:
        if args.separate_worker:
            await stack.start_worker()
        async with httpx2.AsyncClient(timeout=30.0) as http:
            setup = await set_up(http, stack, args.keys_per_tenant, background_budget(args))
            async with ArrivalWatcher(stack, http) as watcher:
                results = await phases(args, stack, http, watcher, setup)
    print_results(args, results)


async def phases(
    args: argparse.Namespace,
    stack: Stack,
    http: httpx2.AsyncClient,
    watcher: ArrivalWatcher,
    setup: Setup,
) -> Results:
    run_id = uuid.uuid4().hex[:8]
    meter = stack.cpu_meter()
    cpu: dict[str, dict[str, float]] = {}

    async def timed(phase: str) -> list[Probe]:
        return await run_probes(
            http, stack, watcher, setup.prober, setup.probe_services, args.probes,
            f"{phase}-{run_id}",
        )  # fmt: skip

    meter.start()
    idle = await timed("idle")
    cpu["idle"] = meter.stop()

    background = Background(setup.targets, args.rate, f"bg-{run_id}")
    stop = asyncio.Event()
    poster = RawPoster(stack.web_url, MAX_IN_FLIGHT)
    try:
        streaming = asyncio.create_task(background.run(poster, stop))
        await asyncio.sleep(WARMUP_SECONDS)
        meter.start()
        statements = None
        if args.statements > 0:
            log = stack.data_dir / "postgres" / "log"
            statements = asyncio.create_task(logged(stack.database_url, log, args.statements))
        loaded = await timed("loaded")
        cpu["under load"] = meter.stop()
        summed = [] if statements is None else await statements
        stop.set()
        await streaming
    finally:
        await poster.close()
    # Background events still on their way get a moment to arrive.
    await asyncio.sleep(2.0)
    background_ttp = [
        watcher.accepted[key].time - answered
        for key, answered in background.accepted.items()
        if key in watcher.accepted
    ]
    return Results(idle, loaded, background, background_ttp, cpu, dict(watcher.statuses), summed)


def print_results(args: argparse.Namespace, results: Results) -> None:
    background, background_ttp = results.background, results.background_ttp
    idle_s, loaded_s = summarize(results.idle), summarize(results.loaded)
    bg_s = Summary(
        count=len(background_ttp),
        p50=percentile(background_ttp, 50),
        p99=percentile(background_ttp, 99),
        max=max(background_ttp) if background_ttp else None,
        missing=len(background.accepted) - len(background_ttp),
    )
    print()
    print(
        table(
            "Time to page: 202 from POST /v1/alerts -> arrival at the sandbox",
            ["phase", *SUMMARY_HEADERS],
            [
                ["idle (one alert at a time)", *idle_s.cells()],
                [f"under load ({background.achieved_rate:.0f} alerts/s)", *loaded_s.cells()],
                ["the background alerts themselves", *bg_s.cells()],
            ],
        )
    )
    print()
    print(
        table(
            "Under load / idle",
            ["p50 ratio", "p99 ratio"],
            [[ratio(loaded_s.p50, idle_s.p50), ratio(loaded_s.p99, idle_s.p99)]],
        )
    )
    print()
    print(cpu_table(results.cpu))
    keys = BACKGROUND_TENANTS * args.keys_per_tenant
    print()
    print(
        f"background: {args.rate:g} alerts/s asked, {background.achieved_rate:.1f}/s accepted, "
        f"over {BACKGROUND_TENANTS} tenants x {args.keys_per_tenant} keys "
        f"({args.rate / keys * 60:.0f}/min per key; budget {background_budget(args)}/min); "
        f"{sum(background.failures.values())} refused, {background.skipped} ticks skipped "
        f"(>{MAX_IN_FLIGHT} in flight)"
    )
    other = {k: v for k, v in results.statuses.items() if k != 202}
    print(f"sandbox answers other than 202 during the run: {other or 'none'}")
    if args.statements > 0:
        print()
        print(statements_table(results.statements, args.statements))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return run_benchmark(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())
