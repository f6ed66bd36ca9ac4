"""A storm from one tenant: tenant A sends 10 000 alerts (batches of 100) to ONE routing key,
whose budget (120 events a minute, the default) drains them over more than an hour. While A's
backlog drains, tenant B sends one alert a second to its own key; its time to page during the
storm (against a few before it, as the baseline) is the figure: one tenant's flood must not
delay another's pages. Also printed: A's backlog, A's delivered rate (which should be its
budget), and the servers' peak memory.

    .venv/bin/python -m bench.storm [--quick] [--alerts 10000] [--observe 200]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx2

from bench.arrivals import ACCEPTED, Arrival, ArrivalWatcher
from bench.cpu import cpu_table
from bench.load import encode, run_benchmark
from bench.memory import PeakRss
from bench.probe import SUMMARY_HEADERS, Probe, probe, summarize
from bench.report import mib, ratio, table
from bench.stack import (
    Stack,
    Tenant,
    add_service,
    alert,
    create_tenant,
    outbox_counts,
    running_stack,
    sandbox_routing_keys,
)

BATCH = 100
SENDERS = 4  # concurrent batch requests from A
B_INTERVAL = 1.0
BUDGET_PER_MINUTE = 120  # pd_services.rate_limit_per_minute's default, left as it is
BUDGET_WINDOW = 62.0  # seconds: the dispatcher's window (DispatchConfig.budget_window)
PAGERDUTY_WINDOW = 60.0
# Deliveries further apart than this belong to different bursts (see long_run_rate).
BURST_GAP = 5.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.storm", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run for smoke tests")
    p.add_argument("--alerts", type=int, default=None, help="A's alerts (10000)")
    p.add_argument("--observe", type=float, default=None, help="seconds B is timed for (200)")
    p.add_argument("--baseline", type=int, default=None, help="B's alerts before the storm (10)")
    args = p.parse_args(argv)
    args.alerts = args.alerts or (1000 if args.quick else 10_000)
    args.observe = args.observe or (30.0 if args.quick else 200.0)
    args.baseline = args.baseline or (3 if args.quick else 10)
    return args


@dataclass
class Storm:
    tenant: Tenant
    alerts: int
    prefix: str
    accepted: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    async def run(self, http: httpx2.AsyncClient, url: str) -> None:
        numbers = iter(range(0, self.alerts, BATCH))
        headers = {**self.tenant.auth, "Content-Type": "application/json"}
        started = time.perf_counter()

        async def sender() -> None:
            # The shared iterator hands each batch to exactly one sender.
            for first in numbers:
                last = min(first + BATCH, self.alerts)
                body = {"alerts": [alert(f"{self.prefix}-{i}") for i in range(first, last)]}
                try:
                    response = await http.post(
                        f"{url}/v1/alerts", content=encode(body), headers=headers
                    )
                except httpx2.HTTPError as exc:
                    self.failures[type(exc).__name__] += 1
                    continue
                if response.status_code == 202:
                    self.accepted += last - first
                else:
                    self.failures[str(response.status_code)] += 1

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        self.seconds = time.perf_counter() - started


@dataclass
class Backlog:
    """A's events still waiting (queued or being sent), read from the outbox."""

    conn: asyncpg.Connection
    tenant: Tenant
    at_ingest_end: int | None = None
    at_last_b: int | None = None
    # One connection runs one query at a time; B's ticks and the storm's end may overlap.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def count(self) -> int:
        async with self._lock:
            value = await self.conn.fetchval(
                "SELECT count(*) FROM events WHERE tenant_id = $1::uuid "
                "AND status IN ('queued', 'sending')",
                self.tenant.id,
            )
        return int(value)


async def b_during_storm(
    http: httpx2.AsyncClient,
    stack: Stack,
    watcher: ArrivalWatcher,
    b: Tenant,
    backlog: Backlog,
    prefix: str,
    until: float,
) -> list[Probe]:
    """One alert from B every B_INTERVAL until `until` (perf_counter), each timed on its own
    task so a slow one does not hold up the next; A's backlog is read at each tick (the last
    reading is kept)."""
    tasks = []
    for i in itertools.count():
        tick = time.perf_counter()
        if tick >= until:
            break
        tasks.append(asyncio.create_task(probe(http, stack.web_url, watcher, b, f"{prefix}-{i}")))
        backlog.at_last_b = await backlog.count()
        await asyncio.sleep(max(tick + B_INTERVAL - time.perf_counter(), 0))
    return list(await asyncio.gather(*tasks))


def long_run_rate(times: list[float]) -> float | None:
    """Deliveries a minute over whole budget windows.

    The dispatcher spends a key's budget as fast as it can, then pauses the key until the
    oldest send leaves the window: deliveries come in bursts one window apart. Counting every
    burst but the last over the time from the first burst to the last gives the long-run rate
    whatever the phase of the observation; without bursts, the plain rate over the span."""
    if len(times) < 2:
        return None
    bursts = [[times[0]]]
    for t in times[1:]:
        if t - bursts[-1][-1] > BURST_GAP:
            bursts.append([])
        bursts[-1].append(t)
    if len(bursts) >= 2:
        span = bursts[-1][0] - bursts[0][0]
        return (len(times) - len(bursts[-1])) / span * 60
    span = times[-1] - times[0]
    return (len(times) - 1) / span * 60 if span >= BUDGET_WINDOW else None


def busiest_window(times: list[float], window: float) -> int:
    """The most deliveries in any `window` seconds (PagerDuty counts over 60)."""
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


async def storm_then_count(
    storm: Storm, http: httpx2.AsyncClient, stack: Stack, backlog: Backlog
) -> None:
    await storm.run(http, stack.web_url)
    backlog.at_ingest_end = await backlog.count()


@dataclass
class Results:
    storm: Storm
    baseline: list[Probe]
    during: list[Probe]
    storm_started: float  # wall clock
    backlog: Backlog
    a_history: list[Arrival]
    counts: dict[str, int]
    memory: PeakRss
    cpu: dict[str, dict[str, float]]
    observed: float


async def measure(args: argparse.Namespace) -> None:
    with running_stack() as stack:
        async with httpx2.AsyncClient(timeout=60.0) as http:
            key_a, key_b = await sandbox_routing_keys(http, stack, 2)
            a = await create_tenant(http, stack, "storm-a")
            b = await create_tenant(http, stack, "steady-b")
            await add_service(http, stack, a, "a", key_a)
            await add_service(http, stack, b, "b", key_b)
            conn = await asyncpg.connect(stack.database_url)
            try:
                watcher = ArrivalWatcher(stack, http, keep_history_for=frozenset({key_a}))
                async with watcher:
                    results = await run(args, stack, http, watcher, a, b, Backlog(conn, a))
            finally:
                await conn.close()
    print_results(args, results)


async def run(
    args: argparse.Namespace,
    stack: Stack,
    http: httpx2.AsyncClient,
    watcher: ArrivalWatcher,
    a: Tenant,
    b: Tenant,
    backlog: Backlog,
) -> Results:
    run_id = uuid.uuid4().hex[:8]
    meter = stack.cpu_meter()
    cpu: dict[str, dict[str, float]] = {}
    meter.start()
    baseline = []
    for i in range(args.baseline):
        baseline.append(await probe(http, stack.web_url, watcher, b, f"b0-{run_id}-{i}"))
        await asyncio.sleep(B_INTERVAL)
    cpu["before the storm"] = meter.stop()

    storm = Storm(a, args.alerts, f"a-{run_id}")
    with PeakRss(stack.server_pids()) as memory:
        meter.start()
        storm_started, started = time.time(), time.perf_counter()
        storming = asyncio.create_task(storm_then_count(storm, http, stack, backlog))
        during = await b_during_storm(
            http, stack, watcher, b, backlog, f"b1-{run_id}", until=started + args.observe
        )
        await storming
        observed = time.perf_counter() - started
        cpu["during the storm"] = meter.stop()
    return Results(
        storm=storm,
        baseline=baseline,
        during=during,
        storm_started=storm_started,
        backlog=backlog,
        a_history=list(watcher.history),
        counts=await outbox_counts(stack, a),
        memory=memory,
        cpu=cpu,
        observed=observed,
    )


def print_results(args: argparse.Namespace, r: Results) -> None:
    ingest_end = r.storm_started + r.storm.seconds
    before, during = summarize(r.baseline), summarize(r.during)
    print()
    print(
        table(
            f"Tenant B's time to page (one alert a second) while tenant A's {args.alerts} "
            "alerts drain",
            ["B's alerts", *SUMMARY_HEADERS],
            [
                ["before the storm", *before.cells()],
                ["during the storm", *during.cells()],
                [
                    "  while A's alerts were accepted",
                    *summarize([p for p in r.during if p.sent < ingest_end]).cells(),
                ],
                [
                    "  while A's backlog drained",
                    *summarize([p for p in r.during if p.sent >= ingest_end]).cells(),
                ],
            ],
        )
    )
    print(
        f"during / before: p50 {ratio(during.p50, before.p50)}, max {ratio(during.max, before.max)}"
    )
    print()
    print(table("Tenant A's storm", ["", "figure"], storm_rows(r), left=2))
    print()
    print(cpu_table(r.cpu))
    print()
    print(
        table(
            "Peak memory (RSS) during the storm",
            ["process", "sampled peak MiB", "lifetime peak (VmHWM) MiB"],
            [[name, mib(peak), mib(hwm)] for name, peak, hwm in r.memory.rows()],
        )
    )
    if r.storm.failures:
        print(f"A's failed requests by status: {dict(r.storm.failures)}")


def storm_rows(r: Results) -> list[list[object]]:
    storm = r.storm
    delivered = sorted(x.time for x in r.a_history if x.status == ACCEPTED)
    throttled = sum(1 for x in r.a_history if x.status == 429)
    rate = long_run_rate(delivered)
    span_rate = len(delivered) / r.observed * 60 if r.observed else 0.0
    waiting = r.counts.get("queued", 0) + r.counts.get("sending", 0)
    return [
        [
            "A's storm ingest",
            f"{storm.accepted} alerts accepted in {storm.seconds:.1f} s "
            f"({storm.accepted / storm.seconds:.0f}/s, {SENDERS} senders x batches of {BATCH}); "
            f"{sum(storm.failures.values())} requests failed",
        ],
        [
            "A still queued while B was timed",
            f"{r.backlog.at_ingest_end} when A's ingest ended, "
            f"{r.backlog.at_last_b} at B's last alert",
        ],
        ["A still queued at the end", f"{waiting} of {storm.accepted}"],
        [
            "A delivered while observed",
            f"{len(delivered)} in {r.observed:.0f} s: {span_rate:.0f}/min on average",
        ],
        [
            "A's long-run rate",
            f"{rate:.0f}/min over whole budget windows"
            if rate is not None
            else f"n/a (needs more than one {BUDGET_WINDOW:.0f} s window: raise --observe)",
        ],
        ["A's budget", f"{BUDGET_PER_MINUTE} per {BUDGET_WINDOW:.0f} s"],
        [
            "A's busiest 60 s at PagerDuty",
            f"{busiest_window(delivered, PAGERDUTY_WINDOW)} events; {throttled} answered 429",
        ],
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return run_benchmark(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())
