"""The cost of one claim as the outbox grows: `claim()` (app/outbox/claims.py), called with the
arguments a dispatcher at rest calls it with, against backlogs of queued events spread over
500 routing keys of one tenant; then the same backlog beside many finished (delivered) events.

    .venv/bin/python -m bench.claim [--quick] [--backlogs 100,1000,10000,100000]
        [--finished 1000000] [--claims 50] [--keys 500] [--concurrency 64] [--fresh]

Only a database runs: an embedded PostgreSQL (pgserver, as the test suite starts it) in a temp
directory, with the migrations applied. The events are written by one INSERT … generate_series
per size, not through HTTP, in chains of trigger, acknowledge and resolve per dedup key, so the
claim's ordering rule has earlier events to look for. After each fill the table is vacuumed
and analysed, as autovacuum would soon do: the figure is the steady state; `--fresh` leaves
that out, for the first minutes after a burst. Each claim is released at once (back to
queued, as a dispatcher that could not send does), so the backlog stays the same size through
its N claims.

The figure is the median claim's time at each size as a ratio to the smallest backlog's: a
claim whose cost is flat in the backlog reads about 1x all the way down. Then the largest
backlog in two databases, one with `--finished` delivered events beside it, claimed in turns
(one claim on each, then again): the second's median as a ratio to the first's ("vs none
finished") is what the finished events cost, with the machine's noise spread over both and
apart from the number of keys with work (the smallest backlog has fewer).
`--explain` prints each size's plan of one claim (EXPLAIN ANALYZE, rolled back) to stderr.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from databases import Database

from app.config.model import Config
from app.db.migrations import apply_migrations
from app.db.pool import asyncpg_dsn
from app.dispatch.policy import DispatchConfig, dispatch_config
from app.outbox.claims import CLAIM, claim, release
from bench.load import run_benchmark
from bench.report import percentile, ratio, table

DATABASE = "pdconnect_bench"
WARMUP_CLAIMS = 3  # per size, not counted: the first ones after a fill read cold pages
HEADERS = (
    "queued", "finished", "claims", "claimed/call", "median ms", "p95 ms", "max ms",
    "median ratio", "vs none finished",
)  # fmt: skip

SEED = """
WITH tenant AS (
    INSERT INTO tenants (name) VALUES ('claim benchmark') RETURNING id
), installation AS (
    INSERT INTO installations (tenant_id, method, account_key, region, events_url)
    SELECT id, 'manual', 'manual', 'us', 'http://127.0.0.1:9/us/events' FROM tenant
    RETURNING id, tenant_id
)
INSERT INTO pd_services (tenant_id, installation_id, name, routing_key_enc, routing_key_hash)
SELECT installation.tenant_id, installation.id, 'service ' || k, 'not-read-by-claims',
    md5('routing key ' || k)
FROM installation, generate_series(0, $1::integer - 1) AS k
"""

# Event g goes to key g % keys; events g, g + keys and g + 2 * keys of one key make one chain
# (trigger, acknowledge, resolve) under one dedup key.
FILL = """
INSERT INTO events (tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body,
    body_bytes, source, status, attempts, finished_at)
SELECT s.tenant_id, s.id, s.routing_key_hash,
    $4 || (g / ($3::integer * 3)) || '-' || (g % $3::integer),
    (ARRAY['trigger', 'acknowledge', 'resolve'])[(g / $3::integer) % 3 + 1],
    'v2', b.body, octet_length(CAST(b.body AS text)), 'native', $5,
    CASE WHEN $5 = 'delivered' THEN 1 ELSE 0 END,
    CASE WHEN $5 = 'delivered' THEN now() END
FROM generate_series($1::bigint, $2::bigint - 1) AS g
JOIN (SELECT tenant_id, id, routing_key_hash,
             row_number() OVER (ORDER BY name) - 1 AS k
      FROM pd_services) AS s ON s.k = g % $3::integer
-- Each body's size kept beside it, as ingest keeps it (app/outbox/events.py).
CROSS JOIN LATERAL (
    SELECT jsonb_build_object('summary', 'claim benchmark event ' || g, 'severity', 'warning',
        'source', 'bench') AS body
) AS b
"""


READY = """
INSERT INTO ready_keys (tenant_id, routing_key_hash)
SELECT DISTINCT tenant_id, routing_key_hash FROM events WHERE status IN ('queued', 'sending')
ON CONFLICT DO NOTHING
"""


@dataclass
class Row:
    queued: int
    finished: int
    times: list[float] = field(default_factory=list)  # seconds, one per claim
    claimed: list[int] = field(default_factory=list)

    def median(self) -> float | None:
        return percentile(self.times, 50)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.claim", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    p.add_argument("--backlogs", help="queued events, comma list (100,1000,10000,100000)")
    p.add_argument(
        "--finished",
        type=int,
        help="delivered events added beside the largest backlog (1000000; quick 20000; 0: none)",
    )
    p.add_argument("--claims", type=int, help="claims timed at each size (50; quick 10)")
    p.add_argument("--keys", type=int, default=500, help="routing keys (services) of the tenant")
    p.add_argument(
        "--concurrency",
        type=int,
        default=Config.dispatch_concurrency,
        help="the dispatcher's PDCONNECT_DISPATCH_CONCURRENCY, which sizes its claims (64)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="also print EXPLAIN (ANALYZE, BUFFERS) of one claim at each size (rolled back)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="no VACUUM ANALYZE after a fill: the minutes after a burst, before autovacuum",
    )
    args = p.parse_args(argv)
    default_backlogs = "100,1000,5000" if args.quick else "100,1000,10000,100000"
    args.backlogs = sorted(int(b) for b in (args.backlogs or default_backlogs).split(","))
    if args.finished is None:
        args.finished = 20_000 if args.quick else 1_000_000
    if args.claims is None:
        args.claims = 10 if args.quick else 50
    return args


@contextmanager
def embedded_postgres() -> Iterator[str]:
    """A fresh embedded PostgreSQL (the test suite's way), its URL; deleted afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns when XDG_RUNTIME_DIR is unset
        from pgserver.postgres_server import get_server

    # A short path: the unix socket lives in the data directory (about 100 bytes at most).
    folder = Path(tempfile.mkdtemp(prefix="pdc-claim-", dir="/tmp"))
    server = get_server(folder, cleanup_mode="delete")
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def fill(url: str, first: int, end: int, keys: int, status: str, *, vacuum: bool) -> None:
    """Events first … end - 1 (numbering their chains), then VACUUM ANALYZE unless not; then a
    CHECKPOINT either way, so that the fill's dirty pages are not written out under the timed
    claims (a fill of a million rows would otherwise have the checkpointer busy through them,
    and its figure would be the fill's, not the claim's)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if end > first:
            prefix = f"{status[0]}{secrets.token_hex(2)}-"
            await conn.execute(FILL, first, end, keys, prefix, status)
            # What enqueue does beside its INSERT (app/outbox/ready.py keys_have_work): the
            # claims start from the keys with pending events.
            await conn.execute(READY)
        if vacuum:
            # The ready keys too: the claims before rewrote their rows many times over.
            await conn.execute("VACUUM ANALYZE events, ready_keys, dispatch_keys")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def one_claim(db: Database, config: DispatchConfig) -> tuple[float, int]:
    """One claim as an idle dispatcher makes it (nothing in flight: the whole batch is free, no
    host is busy), released afterwards: its time and how many it claimed."""
    started = time.perf_counter()
    claimed = await claim(
        db,
        batch=min(config.concurrency, config.batch_size),
        per_tenant=config.per_tenant_scan,
        lease=config.lease,
        max_in_flight_per_key=config.max_in_flight_per_key,
        host_rooms={},
        max_bytes=config.max_held_bytes,
    )
    elapsed = time.perf_counter() - started
    for event in claimed:
        await release(db, event)
    return elapsed, len(claimed)


async def time_claims(db: Database, config: DispatchConfig, row: Row, count: int) -> None:
    """`count` claims on one database (bench.retention's too)."""
    await time_claims_in_turns([(db, row)], config, count)


async def time_claims_in_turns(
    pairs: list[tuple[Database, Row]], config: DispatchConfig, count: int
) -> None:
    """`count` claims on each database, taking turns (one on each, then again), so that
    whatever else keeps the machine busy meanwhile weighs on each alike."""
    for n in range(WARMUP_CLAIMS + count):
        for db, row in pairs:
            elapsed, claimed = await one_claim(db, config)
            if n >= WARMUP_CLAIMS:
                row.times.append(elapsed)
                row.claimed.append(claimed)


async def explain(db: Database, config: DispatchConfig, row: Row) -> None:
    """The plan of one claim at this size, with its timings and buffers, rolled back."""
    transaction = await db.transaction()
    try:
        plan = await db.fetch_all(
            f"EXPLAIN (ANALYZE, BUFFERS) {CLAIM}",
            {
                "batch": min(config.concurrency, config.batch_size),
                "keys": min(config.concurrency, config.batch_size),
                "per_tenant": config.per_tenant_scan,
                "lease": config.lease,
                "key_cap": config.max_in_flight_per_key,
                "host_rooms": "{}",
                # What claim() gives with no host rooms: without it no key has room, and the
                # plan would be of a claim that takes nothing.
                "unknown_room": min(config.concurrency, config.batch_size),
                "max_bytes": config.max_held_bytes,
            },
        )
    finally:
        await transaction.rollback()
    print(f"-- plan at {row.queued} queued, {row.finished} finished", file=sys.stderr)
    print("\n".join(str(p[0]) for p in plan), file=sys.stderr, flush=True)


async def create_database(server_url: str, name: str, keys: int) -> str:
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(server_url, name)
    await apply_migrations(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(SEED, keys)
    finally:
        await conn.close()
    return url


async def measure(args: argparse.Namespace, rows: list[Row]) -> None:
    config = dispatch_config(
        concurrency=args.concurrency,
        retry_base_seconds=Config.retry_base_seconds,
        retry_cap_seconds=Config.retry_cap_seconds,
        give_up_after_hours=Config.give_up_after_hours,
        rate_limited_pause_seconds=Config.rate_limited_pause_seconds,
    )
    vacuum = not args.fresh
    with embedded_postgres() as server_url:
        url = await create_database(server_url, DATABASE, args.keys)
        db = Database(url, min_size=1, max_size=2)
        await db.connect()
        try:
            queued = 0
            for backlog in args.backlogs:
                started = time.monotonic()
                await fill(url, queued, backlog, args.keys, "queued", vacuum=vacuum)
                queued = backlog
                _filled(backlog, 0, started)
                rows.append(Row(queued=backlog, finished=0))
                await time_claims(db, config, rows[-1], args.claims)
                if args.explain:
                    await explain(db, config, rows[-1])
            if args.finished:
                await beside_finished(args, config, server_url, db, url, rows)
        finally:
            await db.disconnect()


async def beside_finished(
    args: argparse.Namespace,
    config: DispatchConfig,
    server_url: str,
    db: Database,
    url: str,
    rows: list[Row],
) -> None:
    """The largest backlog again, and beside it in a database of its own the same backlog with
    `--finished` delivered events, claimed in turns: the ratio of the two is what the finished
    events cost a claim, with the machine's noise spread over both."""
    backlog = args.backlogs[-1]
    started = time.monotonic()
    full_url = await create_database(server_url, f"{DATABASE}_full", args.keys)
    await fill(full_url, 0, backlog, args.keys, "queued", vacuum=False)
    # Numbered after the queued ones, so their chains are their own.
    await fill(
        full_url, backlog, backlog + args.finished, args.keys, "delivered", vacuum=not args.fresh
    )
    # The first database as the second was left: settled the same way.
    await fill(url, backlog, backlog, args.keys, "queued", vacuum=not args.fresh)
    _filled(backlog, args.finished, started)
    full = Database(full_url, min_size=1, max_size=2)
    await full.connect()
    try:
        again, beside = Row(queued=backlog, finished=0), Row(queued=backlog, finished=args.finished)
        await time_claims_in_turns([(db, again), (full, beside)], config, args.claims)
        rows.extend([again, beside])
        if args.explain:
            await explain(full, config, beside)
    finally:
        await full.disconnect()


def _filled(backlog: int, finished: int, started: float) -> None:
    print(
        f"{backlog} queued, {finished} finished: filled in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def report(rows: list[Row], args: argparse.Namespace, load: tuple[float, ...]) -> str:
    base = rows[0].median() if rows else None
    lines = [
        [
            r.queued,
            r.finished,
            len(r.times),
            f"{sum(r.claimed) / max(len(r.claimed), 1):.0f}",
            *(_ms(v) for v in (r.median(), percentile(r.times, 95), max(r.times, default=None))),
            ratio(r.median(), base),
            ratio(r.median(), _none_finished(rows, r)) if r.finished else "",
        ]
        for r in rows
    ]
    title = (
        f"Claim cost: one claim() of an idle dispatcher (concurrency {args.concurrency}) "
        f"against queued events over {args.keys} routing keys of one tenant; "
        f"ratio to the {rows[0].queued if rows else '-'}-event backlog (flat = 1x); "
        + ("no VACUUM ANALYZE after the fills" if args.fresh else "VACUUM ANALYZE after each fill")
    )
    after = os.getloadavg()
    return "\n".join(
        [
            table(title, HEADERS, lines),
            f"load average (1, 5, 15 min): before {_load(load)}, after {_load(after)}",
        ]
    )


def _none_finished(rows: list[Row], row: Row) -> float | None:
    """The median of the same backlog without finished events, measured in turns with it."""
    same = [r for r in rows if r.queued == row.queued and not r.finished]
    return same[-1].median() if same else None


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def _load(load: tuple[float, ...]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    load = os.getloadavg()
    rows: list[Row] = []
    code = run_benchmark(lambda: measure(args, rows))
    if rows:
        print(report(rows, args, load))
    return code


if __name__ == "__main__":
    sys.exit(main())
