"""Retention's two promises, measured: (a) a million finished events in the tables cost ingest
and the dispatcher's claim nothing against an empty database, and (b) removing a large backlog
of old events does not pause ingest.

    .venv/bin/python -m bench.retention [--quick] [--finished 1000000] [--seconds 10]
        [--rounds 2] [--connections 64] [--backlog 10000] [--claims 30]

Two `pdconnect serve` stacks run side by side (bench/stack.py: each with its own embedded
PostgreSQL and sandbox): one with an empty outbox, one with `--finished` events that finished
60 days ago (delivered, one attempt each, chains of trigger, acknowledge and resolve under a
resolved alert life), written by INSERT … generate_series and then vacuumed and analysed, as
autovacuum would soon do. Both run with the dispatcher off (`PDCONNECT_RUN_DISPATCHER=0`, as
web pods run beside separate workers), so that ingest is all their server does, and with
retention off (`PDCONNECT_RETENTION_DAYS=0`): this benchmark runs the sweep itself, when it
chooses, with the same function and batch size the workers' background sweep uses.

(a) One claim (`app/outbox/claims.py`, as bench.claim times it) against the same backlog of
queued events in both databases, alternately; then POST /v1/alerts driven by wrk, empty and
full interleaved (empty, full, empty, …): req/s and latencies of the full stack as ratios to
the empty one's runs around them. The goal: within 10 %.

(b) On the full stack, wrk runs without a sweep and with one (without, with, without, …): during
a run "with", `app.outbox.retention.sweep` removes the old events (30-day retention) from this
process. wrk's script counts answers per second, so beside req/s the table shows the worst
one-second window of each run (wrk's partial first and last seconds left out); for the sweep
runs only the seconds in which the sweep ran count.
The goal: no pause, i.e. the worst second during the sweep near the baseline's worst second.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import httpx2
from databases import Database

from app.config.model import Config
from app.dispatch.policy import dispatch_config
from app.outbox.retention import BATCH, PAUSE, REST_FACTOR, sweep
from bench.claim import SEED, Row, fill, time_claims
from bench.load import run_benchmark
from bench.report import percentile, ratio, table
from bench.runs import (
    RUN_HEADERS,
    Run,
    Target,
    compare_row,
    loadavg_line,
    measured,
    run_row,
)
from bench.stack import (
    Stack,
    add_service,
    alert,
    create_tenant,
    running_stack,
    sandbox_routing_keys,
)
from bench.wrk import (
    wrk_or_exit,
)

EMPTY = "empty"
FULL = "full"
WITHOUT = "no sweep"
WITH = "sweeping"
KEEP = timedelta(days=30)
FINISHED_AGO = timedelta(days=60)
SECOND_MARK = "answers-in-second:"
A_HEADERS = (
    *("conns", f"{EMPTY} req/s: median (range, spread)", f"{FULL} req/s"),
    *("req/s ratio", "p50 ratio", "p99 ratio"),
)
B_HEADERS = (
    *("req/s ratio", "worst 1 s without", "worst 1 s sweeping", "worst-second ratio"),
    *("events removed", "removed/s", "finished events left"),
)
STACK_SETTINGS = {"PDCONNECT_RUN_DISPATCHER": "0", "PDCONNECT_RETENTION_DAYS": "0"}

# Appended to bench/wrk.py's script (same chunk, so `threads` and `mark` are in scope): every
# answer is also counted under the wall-clock second it arrived in, and done() prints the
# counts of all threads added up, one line a second.
PER_SECOND_LUA = f"""
local count_unexpected = response
seconds = {{}}
function response(status, headers, body)
  local s = os.time()
  seconds[s] = (seconds[s] or 0) + 1
  count_unexpected(status, headers, body)
end

local report_unexpected = done
function done(summary, latency, requests)
  report_unexpected(summary, latency, requests)
  local total = {{}}
  for _, thread in ipairs(threads) do
    for s, n in pairs(thread:get("seconds")) do
      total[s] = (total[s] or 0) + n
    end
  end
  for s, n in pairs(total) do
    io.write("{SECOND_MARK} " .. s .. " " .. n .. "\\n")
  end
end
"""

# Chains of three events (trigger, acknowledge, resolve) under one resolved alert life; event g
# belongs to chain g / 3 and goes to routing key g % keys. Ids of lives are derived from the
# chain's number so the events can name them without a join.
FILL_ALERTS = """
INSERT INTO alerts (id, tenant_id, dedup_key, service_ids, state, opened_at, acknowledged_at,
    resolved_at, last_event_at, summary)
SELECT md5($3 || c)::uuid, $1::uuid, $3 || c, '{}', 'resolved',
    now() - CAST($4 AS interval), now() - CAST($4 AS interval), now() - CAST($4 AS interval),
    now() - CAST($4 AS interval), 'retention benchmark alert'
FROM generate_series(0, ($2::bigint + 2) / 3 - 1) AS c
"""
FILL_EVENTS = """
INSERT INTO events (tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body, source,
    status, attempts, created_at, finished_at, alert_id)
SELECT $1::uuid, NULL, md5('old routing key ' || (g % $5::integer)), $3 || (g / 3),
    (ARRAY['trigger', 'acknowledge', 'resolve'])[g % 3 + 1], 'v2',
    jsonb_build_object('summary', 'retention benchmark event ' || g, 'severity', 'warning',
        'source', 'bench'),
    'native', 'delivered', 1, now() - CAST($4 AS interval), now() - CAST($4 AS interval),
    md5($3 || (g / 3))::uuid
FROM generate_series(0, $2::bigint - 1) AS g
"""
FILL_ATTEMPTS = """
INSERT INTO delivery_attempts (event_id, routing_key_hash, started_at, finished_at, latency_ms,
    http_status, outcome, response)
SELECT id, routing_key_hash, finished_at, finished_at, 12, 202, 'delivered',
    '{"status": "success", "message": "Event processed"}'::jsonb
FROM events WHERE tenant_id = $1::uuid
"""


@dataclass
class Sweep:
    started: float = 0.0  # wall clock (time.time), as wrk's os.time() counts seconds
    ended: float = 0.0
    events: int = 0
    done: bool = False


@dataclass
class SecondRun:
    """A wrk run with its answers counted per wall-clock second."""

    run: Run
    seconds: dict[int, int] = field(default_factory=dict)
    sweep: Sweep | None = None

    def whole_seconds(self) -> list[int]:
        """Answers in each second wholly inside the run (wrk's first and last seconds are
        partial) and, for a run with a sweep, in which the sweep was running."""
        keys = sorted(self.seconds)[1:-1]
        if self.sweep is not None:
            keys = [s for s in keys if self.sweep.started < s + 1 and s < self.sweep.ended]
        return [self.seconds[s] for s in keys]

    def worst(self) -> int | None:
        counts = self.whole_seconds()
        return min(counts) if counts else None


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.retention", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run for smoke tests")
    p.add_argument("--finished", type=int, help="old finished events (1000000; quick 20000)")
    p.add_argument("--seconds", type=int, help="measured seconds per wrk run (10; quick 3)")
    p.add_argument("--warmup", type=int, help="unmeasured seconds first (2; quick 1)")
    p.add_argument("--rounds", type=int, help="measured runs per comparison (2; quick 1)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--backlog", type=int, help="queued events the claims see (10000; quick 1000)")
    p.add_argument("--claims", type=int, help="claims timed per database and round (30; quick 5)")
    p.add_argument("--keys", type=int, default=500, help="routing keys of the queued backlog")
    p.add_argument(
        "--rest-factor",
        type=float,
        default=REST_FACTOR,
        help=f"the sweep's rest after each batch, in batch lengths ({REST_FACTOR:g})",
    )
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "finished": 20_000 if quick else 1_000_000,
        "seconds": 3 if quick else 10,
        "warmup": 1 if quick else 2,
        "rounds": 1 if quick else 2,
        "backlog": 1_000 if quick else 10_000,
        "claims": 5 if quick else 30,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


async def _execute(stack: Stack, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def fill_finished(stack: Stack, tenant_id: str, finished: int, keys: int) -> None:
    """`finished` events that finished long ago, with their attempts and alert lives."""
    prefix = f"old-{uuid.uuid4().hex[:6]}-"
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(FILL_ALERTS, tenant_id, finished, prefix, FINISHED_AGO)
        await conn.execute(FILL_EVENTS, tenant_id, finished, prefix, FINISHED_AGO, keys)
        await conn.execute(FILL_ATTEMPTS, tenant_id)
        await conn.execute("VACUUM ANALYZE events, delivery_attempts, alerts")
    finally:
        await conn.close()


async def time_claims_in_turn(
    args: argparse.Namespace, stacks: Mapping[str, Stack]
) -> dict[str, Row]:
    """The same backlog of queued events in each database, then claims timed alternately."""
    config = dispatch_config(
        concurrency=Config.dispatch_concurrency,
        retry_base_seconds=Config.retry_base_seconds,
        retry_cap_seconds=Config.retry_cap_seconds,
        give_up_after_hours=Config.give_up_after_hours,
        rate_limited_pause_seconds=Config.rate_limited_pause_seconds,
    )
    dbs: dict[str, Database] = {}
    rows: dict[str, Row] = {}
    try:
        for label, stack in stacks.items():
            await _execute(stack, SEED, args.keys)
            # The claim benchmark's own fill: chains over the keys, numbered from 0.
            await fill(stack.database_url, 0, args.backlog, args.keys, "queued", vacuum=True)
            dbs[label] = Database(stack.database_url, min_size=1, max_size=2)
            await dbs[label].connect()
            rows[label] = Row(queued=args.backlog, finished=0)
        for _ in range(args.rounds):
            for label, db in dbs.items():
                await time_claims(db, config, rows[label], args.claims)
    finally:
        for db in dbs.values():
            await db.disconnect()
    return rows


def per_second(output: str) -> dict[int, int]:
    return {int(s): int(n) for s, n in re.findall(rf"^{SECOND_MARK} (\d+) (\d+)$", output, re.M)}


async def measured_by_second(
    target: Target, body: Mapping[str, Any], *, key_prefix: str, connections: int, seconds: int
) -> SecondRun:
    """bench/runs.py's `measured`, with answers counted per second."""
    run = await measured(
        target,
        body,
        key_prefix=key_prefix,
        connections=connections,
        seconds=seconds,
        lua_extra=PER_SECOND_LUA,
    )
    return SecondRun(run, per_second(run.result.output))


async def sweeping(db: Database, stop: asyncio.Event, into: Sweep, rest_factor: float) -> None:
    """The workers' sweep (same batch, same rests) until it is done or `stop` is set."""
    into.started = time.time()
    swept = await sweep(db, KEEP, batch=BATCH, pause=PAUSE, rest_factor=rest_factor, stop=stop)
    into.ended = time.time()
    into.events = swept.events
    into.done = not stop.is_set()


async def interleaved_by_second(
    baseline: Any, measure: Any, rounds: int
) -> tuple[list[SecondRun], list[SecondRun]]:
    """bench/runs.py's `interleaved` for SecondRuns: baseline, measured, baseline, …"""
    baselines: list[SecondRun] = [await baseline()]
    runs: list[SecondRun] = []
    for _ in range(rounds):
        runs.append(await measure())
        baselines.append(await baseline())
    for i, second_run in enumerate(runs):
        around = statistics.mean(b.run.rps for b in baselines[i : i + 2])
        second_run.run.ratio = second_run.run.rps / around if around else None
    return baselines, runs


async def measure(args: argparse.Namespace) -> None:
    print(loadavg_line("before"), flush=True)
    with running_stack(STACK_SETTINGS) as empty, running_stack(STACK_SETTINGS) as full:
        stacks = {EMPTY: empty, FULL: full}
        targets: dict[str, Target] = {}
        async with httpx2.AsyncClient(timeout=30.0) as http:
            for label, stack in stacks.items():
                tenant = await create_tenant(http, stack, f"retention-bench {label}")
                (key,) = await sandbox_routing_keys(http, stack, 1)
                await add_service(http, stack, tenant, "ingest", key)
                targets[label] = Target(
                    label,
                    f"{stack.web_url}/v1/alerts",
                    tenant.auth,
                    stack.web.pid,
                    stack.postgres_pid,
                )
                if stack is full:
                    started = time.monotonic()
                    await fill_finished(full, tenant.id, args.finished, args.keys)
                    print(
                        f"{args.finished} finished events filled in "
                        f"{time.monotonic() - started:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )

        claims = await time_claims_in_turn(args, stacks)

        run_id = uuid.uuid4().hex[:8]
        body = alert("replaced per request")
        serial = iter(range(1_000_000))

        async def run(label: str, seconds: int, sweep_db: Database | None = None) -> SecondRun:
            prefix = f"{label.replace(' ', '-')}-{run_id}-{next(serial)}"
            stop = asyncio.Event()
            into = Sweep()
            task = None
            if sweep_db is not None:
                task = asyncio.create_task(sweeping(sweep_db, stop, into, args.rest_factor))
            try:
                second_run = await measured_by_second(
                    targets[label],
                    body,
                    key_prefix=prefix,
                    connections=args.connections,
                    seconds=seconds,
                )
            finally:
                stop.set()
                if task is not None:
                    await task
            second_run.run.label = label if sweep_db is None else f"{label}, {WITH}"
            second_run.sweep = into if sweep_db is not None else None
            return second_run

        for label in stacks:
            await run(label, args.warmup)
        # (a) empty, full, empty, …
        empty_runs, full_runs = await interleaved_by_second(
            lambda: run(EMPTY, args.seconds), lambda: run(FULL, args.seconds), args.rounds
        )
        # (b) on the full stack: no sweep, sweeping, no sweep, …
        sweep_db = Database(full.database_url, min_size=1, max_size=1)
        await sweep_db.connect()
        try:
            quiet_runs, sweep_runs = await interleaved_by_second(
                lambda: run(FULL, args.seconds),
                lambda: run(FULL, args.seconds, sweep_db),
                args.rounds,
            )
        finally:
            await sweep_db.disconnect()
        left = await _count(full, "SELECT count(*) FROM events WHERE finished_at IS NOT NULL")

    report(args, claims, (empty_runs, full_runs), (quiet_runs, sweep_runs), left)
    print(loadavg_line("after"))


async def _count(stack: Stack, sql: str) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def report(
    args: argparse.Namespace,
    claims: Mapping[str, Row],
    a: tuple[list[SecondRun], list[SecondRun]],
    b: tuple[list[SecondRun], list[SecondRun]],
    finished_left: int,
) -> None:
    print()
    print(
        table(
            f"(a) One claim against {args.backlog} queued events over {args.keys} routing keys, "
            f"in an empty outbox and beside {args.finished} finished events (alternately); "
            "ratio to the empty database's median",
            ["database", "claims", "median ms", "p95 ms", "max ms", "median ratio"],
            [
                [
                    label,
                    len(row.times),
                    *(_ms(v) for v in (row.median(), percentile(row.times, 95))),
                    _ms(max(row.times, default=None)),
                    ratio(row.median(), claims[EMPTY].median()),
                ]
                for label, row in claims.items()
            ],
        )
    )
    empty_runs, full_runs = a
    print()
    print(
        table(
            f"(a) Ingest: POST /v1/alerts, wrk -c{args.connections} for {args.seconds} s per run, "
            f"empty outbox vs {args.finished} finished events; ratio = req/s over the empty "
            "stack's runs around it",
            (*RUN_HEADERS, "worst 1 s"),
            _rows(empty_runs, full_runs),
        )
    )
    print()
    print(
        table(
            f"(a) {FULL} ({args.finished} finished events) / {EMPTY} (goal: within 10 %)",
            A_HEADERS,
            [
                compare_row(
                    args.connections, [r.run for r in empty_runs], [r.run for r in full_runs]
                )
            ],
        )
    )
    quiet_runs, sweep_runs = b
    print()
    print(
        table(
            f"(b) Ingest on the {FULL} stack while retention removes events older than "
            f"{KEEP.days} days (batches of {BATCH}, each followed by a rest "
            f"{args.rest_factor:g}x its time, at least {PAUSE.total_seconds() * 1000:.0f} ms) "
            "vs without; worst 1 s = fewest answers in one whole second (sweep runs: seconds "
            "in which the sweep ran)",
            (*RUN_HEADERS, "worst 1 s"),
            _rows(quiet_runs, sweep_runs),
        )
    )
    worst_quiet = [w for r in quiet_runs if (w := r.worst()) is not None]
    worst_sweep = [w for r in sweep_runs if (w := r.worst()) is not None]
    swept = sum(r.sweep.events for r in sweep_runs if r.sweep is not None)
    sweep_time = sum(r.sweep.ended - r.sweep.started for r in sweep_runs if r.sweep is not None)
    print()
    print(
        table(
            f"(b) {WITH} / {WITHOUT} (goal: no pause)",
            B_HEADERS,
            [
                [
                    _mean_ratio(sweep_runs),
                    min(worst_quiet, default="-"),
                    min(worst_sweep, default="-"),
                    ratio(
                        min(worst_sweep) if worst_sweep else None,
                        min(worst_quiet) if worst_quiet else None,
                    ),
                    swept,
                    f"{swept / sweep_time:.0f}" if sweep_time else "-",
                    finished_left,
                ]
            ],
        )
    )


def _rows(baselines: list[SecondRun], runs: list[SecondRun]) -> list[list[object]]:
    rows: list[list[object]] = []
    for i, baseline in enumerate(baselines):
        rows.append([*run_row(baseline.run), baseline.worst() or "-"])
        if i < len(runs):
            rows.append([*run_row(runs[i].run), runs[i].worst() or "-"])
    return rows


def _mean_ratio(runs: list[SecondRun]) -> str:
    ratios = [r.run.ratio for r in runs if r.run.ratio is not None]
    return f"{statistics.mean(ratios):.3g}x" if ratios else "-"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wrk_or_exit()
    return run_benchmark(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())
