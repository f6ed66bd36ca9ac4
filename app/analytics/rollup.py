"""The background fold: every `INTERVAL`, what finished (events) or happened (an alert's open,
acknowledge or resolve) since the watermark is added to the hourly rollups, and the watermark
moves on, in one transaction per chunk.

Why a periodic fold rather than triggers on `events` and `alerts`: a trigger would add an
upsert of a shared rollup row to every delivery and every alert change, on the paths the
product is measured on, and concurrent deliveries of one tenant would queue on that row (one
per tenant, service and hour) inside their transactions. Measured on this 2-core machine with
`python -m tests.analytics.measure_triggers` (20 000 events, batches of 128, one connection, so
without that queueing): marking events delivered took 34-38 us an event without a trigger and
62-71 us with one, about 1.8x; the fold of the same events, once, off the hot path, 4-6 us an
event. The fold reads through indexes retention already keeps (`events_finished`) and
`alerts_last_event`, so its cost follows what finished since the last fold, not the tables'
size.

The fold stays `LAG` behind the clock: a time written by a transaction that has not committed
yet (`finished_at` is the statement's clock, `opened_at` its transaction's start) is at most a
statement timeout old when it commits, far less than `LAG`, so nothing lands behind the
watermark. Two processes folding at once take turns on the watermark's row lock; the second
finds the range done. Retention (app/outbox/retention.py) removes nothing the watermark has not
passed."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial

from databases import Database

from app.analytics import store
from app.callbacks.emit import sla_breached
from app.db.periodic import run_periodically

log = logging.getLogger("pdconnect.analytics")

LAG = timedelta(minutes=2)
# The most one transaction folds: an hour of history after a pause or at the first run.
CHUNK = timedelta(hours=1)
INTERVAL = timedelta(minutes=1)


async def fold_once(db: Database, *, lag: timedelta = LAG, chunk: timedelta = CHUNK) -> bool:
    """Fold one chunk; False once the watermark is within `lag` of now (nothing left)."""
    async with db.transaction():
        lo = await store.lock_watermark(db)
        limit = await store.database_now(db) - lag
        if lo >= limit:
            return False
        first = await store.earliest_unfolded(db, lo)
        if first is None or first > limit:
            # Nothing happened since: the watermark jumps to the limit.
            await store.fold_range(db, lo, limit)
            return False
        hi = min(limit, first + chunk)
        await store.fold_range(db, lo, hi)
        return hi < limit


async def fold(db: Database, *, lag: timedelta = LAG, chunk: timedelta = CHUNK) -> int:
    """Fold until caught up, then tell the vendor's product of the breaches found; the number
    of chunks folded."""
    chunks = 0
    while await fold_once(db, lag=lag, chunk=chunk):
        chunks += 1
    await report_breaches(db)
    return chunks + 1


async def report_breaches(db: Database) -> int:
    """New target breaches as `alert.sla_breached` callbacks (when the tenant has a receiver),
    each recorded with its breach marked told, in one transaction; how many."""
    async with db.transaction():
        found = await store.new_breaches(db)
        for breach in found:
            await sla_breached(
                db,
                tenant_id=breach.tenant_id,
                breach_id=breach.id,
                dedup_key=breach.dedup_key,
                target=breach.target,
                severity=breach.severity,
                target_seconds=breach.target_seconds,
                took_seconds=breach.took_seconds,
                opened_at=breach.opened_at,
            )
        await store.mark_notified(db, [b.id for b in found])
    return len(found)


class Rollups:
    """A worker's (and `serve`'s) fold, every `interval`."""

    def __init__(self, db: Database, *, interval: timedelta = INTERVAL) -> None:
        self.db = db
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        # Failing, the figures fall behind (and retention waits for them); delivery goes on.
        await run_periodically(
            partial(fold, self.db), every=self.interval, stop=stop, log=log, what="analytics fold"
        )
