"""Retention: finished events leave the outbox after `PDCONNECT_RETENTION_DAYS` (30; 0 keeps
them forever), so the tables ingest and the claims work on stay the size of their live work.

What goes, oldest first, in batches of `BATCH` rows, each batch one statement in its own short
transaction (so ingest and claims never wait behind a sweep, and a sweep stopped half way has
done whole batches):

- **events** finished (delivered, failed, cancelled, skipped: `finished_at` is set with a
  final status and only then; the statement also names the pending statuses it never takes, so
  a final status added later is swept without a change here) longer ago than the period.
  Their **delivery attempts** go with them: `delivery_attempts.event_id` is `ON DELETE
  CASCADE`, so the same statement removes them through the foreign key's index. Pending events
  (queued, sending, held) never go, however old: they are live work, and their attempts stay.
- **alert lives** (`alerts`) that are resolved, whose last event is older than the period, and
  to which no event refers any more. An open life stays whatever its age: its acknowledge and
  resolve must still find the services its trigger went to. Without its life, a late resolve of
  a long-closed alert is treated as one pdconnect never saw, as PagerDuty treats it.
- **incident states** (`incident_states`, what PagerDuty's webhooks said of an alert) not
  changed within the period whose alert has no life left: they are shown only beside events of
  that alert, and none is left. A later webhook for it records the state again.

Nothing the analytics still need goes before their fold (app/analytics/rollup.py) has counted
it: events and alert lives past its watermark (`analytics_watermark`) wait for a later sweep,
unless they are older than the analytics' longest window (30 days), which no figure reads.

Those two tables are written by app/alerts and app/webhooks; retention only deletes, and only
rows nothing refers to any more, which is why the outbox (a lower layer than both) may do it
without importing them. Not swept: `webhook_deliveries` (the connection upkeep forgets them
after seven days), `audit_log` (one row per admin action, not per event: the record of who
changed what is kept), and the per-key tables (`dispatch_keys`, `ingest_key_budgets`), whose
size follows the keys, not the traffic.

Concurrency: every batch picks its rows `FOR UPDATE SKIP LOCKED` and deletes them by id, so two
sweeps at once (every worker runs one) take disjoint rows and never wait on each other; nothing
on the hot paths locks a finished event. An alert life that an ingest request is updating or
referring to is locked by that request (its UPDATE, or the foreign key check of its new event)
and skipped. What no lock covers: a request reads lives without a lock (a lock there would cost
every request), so one may refer to a life that a sweep deletes between its read and its write;
its insert then fails on the foreign key, and ingest (app/ingest/intake.py) plans that request
again on the lives left: a late resolve of a long-closed alert is then skipped, as one for an
alert pdconnect never saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from databases import Database

from app.db.errors import database_unreachable
from app.db.pool import in_own_task

log = logging.getLogger("pdconnect.retention")

# Rows one statement deletes: a few tens of milliseconds of work (with the events' attempts),
# short enough that a sweep's row locks and WAL never stand out beside ingest's.
BATCH = 1000
# A rest between batches, at least PAUSE and otherwise REST_FACTOR times as long as the batch
# took: a sweep through a large backlog keeps at most a tenth of one backend busy and leaves the
# rest of the machine to ingest and the claims, and it slows down by itself when the database is
# busy (its batches take longer). Loaded 2-core machine, a million old events: about 2 000
# events a second (`python -m bench.retention`), 170 million a day. Events finish no faster
# than PagerDuty's budgets let them go (120 a minute per routing key: 2 a second): a hundred
# keys sending at their full budget all day finish a tenth of that, and the sweep goes faster
# on a machine that is not busy with other work.
PAUSE = timedelta(milliseconds=50)
REST_FACTOR = 9.0
# How often a process looks for what has aged out: a day's worth of finished events is swept a
# few hundred at a time, and nothing depends on their going at once.
INTERVAL = timedelta(minutes=10)

# Each statement deletes at most :batch rows older than :keep and returns how many it deleted.
# Shapes chosen so the plan does not depend on the statistics of the moment:
# - the rows are picked oldest first through the indexes of migrations/0010_retention.sql into
#   an ARRAY(...), computed once, and then deleted by their key (or ctid, for a table keyed by
#   two columns: the row lock taken when it was picked keeps it in place): an `IN (subquery)`
#   lets the planner hash-join the whole table against the batch instead;
# - `OFFSET 0` keeps each NOT EXISTS a probe of one index per candidate row: without it the
#   planner may turn it into a hash anti-join that reads the whole events table (hundreds of
#   milliseconds a batch at a million events).
DELETE_EVENTS = """
WITH gone AS (
    DELETE FROM events WHERE id = ANY(ARRAY(
        SELECT id FROM events
        WHERE finished_at < now() - CAST(:keep AS interval)
          AND (finished_at <= (SELECT folded_to FROM analytics_watermark)
              OR finished_at < now() - interval '30 days')
          AND status NOT IN ('queued', 'sending', 'held')
        ORDER BY finished_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED))
    RETURNING 1)
SELECT count(*) FROM gone
"""

DELETE_ALERTS = """
WITH gone AS (
    DELETE FROM alerts WHERE id = ANY(ARRAY(
        SELECT a.id FROM alerts a
        WHERE a.state = 'resolved' AND a.last_event_at < now() - CAST(:keep AS interval)
          AND (a.last_event_at <= (SELECT folded_to FROM analytics_watermark)
              OR a.last_event_at < now() - interval '30 days')
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.alert_id = a.id OFFSET 0)
        ORDER BY a.last_event_at
        LIMIT :batch
        FOR UPDATE OF a SKIP LOCKED))
    RETURNING 1)
SELECT count(*) FROM gone
"""

DELETE_INCIDENT_STATES = """
WITH gone AS (
    DELETE FROM incident_states WHERE ctid = ANY(ARRAY(
        SELECT i.ctid FROM incident_states i
        WHERE i.changed_at < now() - CAST(:keep AS interval)
          AND NOT EXISTS (
              SELECT 1 FROM alerts a
              WHERE a.tenant_id = i.tenant_id AND a.dedup_key = i.dedup_key OFFSET 0)
        ORDER BY i.changed_at
        LIMIT :batch
        FOR UPDATE OF i SKIP LOCKED))
    RETURNING 1)
SELECT count(*) FROM gone
"""

# In this order: an alert life can go only once its events have.
STEPS = (
    ("events", DELETE_EVENTS),
    ("alerts", DELETE_ALERTS),
    ("incident_states", DELETE_INCIDENT_STATES),
)


@dataclass(frozen=True)
class Swept:
    """Rows one sweep deleted (the events' attempts went with their events)."""

    events: int = 0
    alerts: int = 0
    incident_states: int = 0


def kept_for(days: int) -> timedelta | None:
    """The retention period of `PDCONNECT_RETENTION_DAYS`; None (0) keeps everything."""
    return timedelta(days=days) if days > 0 else None


async def delete_batch(db: Database, sql: str, *, keep: timedelta, batch: int) -> int:
    """One batch of one step, in a transaction of its own (the statement's)."""
    deleted = await db.fetch_val(sql, {"keep": keep, "batch": batch})
    return int(deleted or 0)


async def sweep(
    db: Database,
    keep: timedelta | None,
    *,
    batch: int = BATCH,
    pause: timedelta = PAUSE,
    rest_factor: float = REST_FACTOR,
    stop: asyncio.Event | None = None,
) -> Swept:
    """Delete everything older than `keep`, a batch at a time with a rest after each of
    `rest_factor` times its length (at least `pause`; see REST_FACTOR), until a batch comes
    back short (or `stop` is set). None deletes nothing."""
    counts = dict.fromkeys((name for name, _ in STEPS), 0)
    if keep is None:
        return Swept()
    for name, sql in STEPS:
        while stop is None or not stop.is_set():
            started = time.monotonic()
            deleted = await delete_batch(db, sql, keep=keep, batch=batch)
            counts[name] += deleted
            if deleted < batch:
                break
            took = time.monotonic() - started
            await asyncio.sleep(max(pause.total_seconds(), took * rest_factor))
    return Swept(**counts)


class Retention:
    """The background sweep of a worker (and of `serve`, which runs one): every `interval`, a
    sweep through whatever has aged out."""

    def __init__(
        self,
        db: Database,
        *,
        days: int,
        interval: timedelta = INTERVAL,
        batch: int = BATCH,
        pause: timedelta = PAUSE,
    ):
        self.db = db
        self.keep = kept_for(days)
        self.interval = interval
        self.batch = batch
        self.pause = pause

    async def run(self, stop: asyncio.Event) -> None:
        if self.keep is None:
            return  # kept forever: nothing to look for, ever
        while not stop.is_set():
            try:
                swept = await in_own_task(
                    sweep(self.db, self.keep, batch=self.batch, pause=self.pause, stop=stop)
                )
                if swept != Swept():
                    log.info(
                        "retention removed %d events (with their attempts), %d alert lives, "
                        "%d incident states finished before the last %s",
                        swept.events,
                        swept.alerts,
                        swept.incident_states,
                        self.keep,
                    )
            except Exception as exc:
                if database_unreachable(exc):
                    log.warning("retention waits for the database (%s)", type(exc).__name__)
                else:
                    # A failing sweep must not stop delivery in the same process; it says so.
                    log.exception("retention sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval.total_seconds())
