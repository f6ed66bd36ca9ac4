"""SQL of the outbox: enqueue, claim, spend a key's budget, record answers, read the log.

Claiming (one statement): the (tenant, routing key) pairs with pending events are read from an
index and paused keys dropped; for each open pair, its oldest claimable events
(`per_tenant_scan`); these are interleaved by rank so each tenant gets a turn before any gets
a second, then locked with SKIP LOCKED and leased. An event is claimable when it is due, its
key is not paused, and no earlier event of the same (routing key, dedup key) is still pending:
that last rule is the ordering promise, and it holds across workers because an event leaves
the pending states only for a final one.

Times are the database's (`clock_timestamp()`), so workers on several machines agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from databases import Database
from databases.interfaces import Record

NOTIFY_CHANNEL = "pdconnect_events"
PENDING = ("queued", "sending", "held")


@dataclass(frozen=True)
class NewEvent:
    tenant_id: UUID
    # Both None only for a skipped event, which goes nowhere.
    service_id: UUID | None
    routing_key_hash: str | None
    dedup_key: str | None
    kind: str
    api: str
    body: Mapping[str, Any]
    notes: tuple[str, ...]
    source: str
    # queued; held (its service is unhealthy); skipped (recorded, nothing to send).
    status: str = "queued"
    alert_id: UUID | None = None
    # Why it is skipped: shown where a failure's error would be.
    reason: str | None = None
    # Not sent before this much time has passed (a test event's resolve).
    due_in: timedelta | None = None


@dataclass(frozen=True)
class Claimed:
    id: UUID
    seq: int
    tenant_id: UUID
    service_id: UUID | None
    routing_key_hash: str
    dedup_key: str | None
    kind: str
    api: str
    body: Mapping[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Target:
    """Where and how a service's events go; the key is still encrypted."""

    routing_key_enc: str
    events_url: str
    api_version: str
    rate_limit_per_minute: int
    health: str


@dataclass(frozen=True)
class Event:
    id: UUID
    seq: int
    tenant_id: UUID
    service_id: UUID | None
    service_name: str | None
    dedup_key: str | None
    kind: str
    api: str
    body: Mapping[str, Any]
    notes: tuple[str, ...]
    source: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    pd_errors: tuple[str, ...]
    # What PagerDuty's webhooks said became of the alert (None until one arrives).
    incident_status: str | None = None
    incident_changed_by: str | None = None
    incident_changed_at: datetime | None = None
    incident_url: str | None = None
    alert_id: UUID | None = None


@dataclass(frozen=True)
class Attempt:
    id: int
    started_at: datetime
    finished_at: datetime | None
    latency_ms: int | None
    http_status: int | None
    outcome: str | None
    response: Mapping[str, Any] | None
    error: str | None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def enqueue(db: Database, events: Sequence[NewEvent]) -> list[tuple[UUID, str]]:
    """Insert events in order (their seq is their acceptance order) and wake the workers.
    Call inside the transaction that answers the sender: committed means accepted."""
    created: list[tuple[UUID, str]] = []
    for event in events:
        row = await db.fetch_one(
            """
            INSERT INTO events (tenant_id, service_id, routing_key_hash, dedup_key, kind, api,
                body, notes, source, status, alert_id, last_error, next_attempt_at, finished_at)
            VALUES (:tenant_id, :service_id, :routing_key_hash, :dedup_key, :kind, :api,
                CAST(:body AS jsonb), :notes, :source, :status, :alert_id, :reason,
                clock_timestamp() + CAST(:due_in AS interval),
                CASE WHEN :status = 'skipped' THEN clock_timestamp() END)
            RETURNING id, status
            """,
            {
                "tenant_id": event.tenant_id,
                "service_id": event.service_id,
                "routing_key_hash": event.routing_key_hash,
                "dedup_key": event.dedup_key,
                "kind": event.kind,
                "api": event.api,
                "body": json.dumps(event.body),
                "notes": list(event.notes),
                "source": event.source,
                "status": event.status,
                "alert_id": event.alert_id,
                "reason": event.reason,
                "due_in": event.due_in or timedelta(0),
            },
        )
        assert row is not None
        created.append((row._mapping["id"], row._mapping["status"]))
    # Delivered at commit, to every listening worker.
    await db.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return created


CLAIM = """
UPDATE events SET status = 'sending', lease_until = clock_timestamp() + CAST(:lease AS interval)
WHERE id IN (
    SELECT id FROM events
    WHERE id IN (
        SELECT c.id FROM (
            -- Every (tenant, key) with pending events, from the index alone; paused keys
            -- drop out here, before any of their events is looked at.
            SELECT p.tenant_id, p.routing_key_hash FROM (
                SELECT DISTINCT tenant_id, routing_key_hash FROM events
                WHERE status IN ('queued', 'sending')
            ) AS p
            LEFT JOIN dispatch_keys k ON k.routing_key_hash = p.routing_key_hash
            WHERE k.paused_until IS NULL OR k.paused_until <= clock_timestamp()
        ) AS open_keys
        CROSS JOIN LATERAL (
            SELECT e.id, e.seq FROM events e
            WHERE e.tenant_id = open_keys.tenant_id
              AND e.routing_key_hash = open_keys.routing_key_hash
              AND ((e.status = 'queued' AND e.next_attempt_at <= clock_timestamp())
                   OR (e.status = 'sending' AND e.lease_until < clock_timestamp()))
              AND (e.dedup_key IS NULL OR NOT EXISTS (
                    SELECT 1 FROM events p
                    WHERE p.routing_key_hash = e.routing_key_hash
                      AND p.dedup_key = e.dedup_key
                      AND p.seq < e.seq
                      AND p.status IN ('queued', 'sending', 'held')))
            ORDER BY e.seq
            LIMIT :per_tenant
        ) AS c
        -- Each tenant's oldest first, one tenant's turn at a time: an alert storm in one
        -- tenant waits behind another tenant's single page, never the other way round.
        ORDER BY row_number() OVER (PARTITION BY open_keys.tenant_id ORDER BY c.seq), c.seq
        LIMIT :batch
    )
    AND ((status = 'queued' AND next_attempt_at <= clock_timestamp())
         OR (status = 'sending' AND lease_until < clock_timestamp()))
    FOR UPDATE SKIP LOCKED
)
RETURNING id, seq, tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body,
    attempts, created_at
"""


async def claim(db: Database, *, batch: int, per_tenant: int, lease: timedelta) -> list[Claimed]:
    rows = await db.fetch_all(
        CLAIM,
        {"batch": batch, "per_tenant": per_tenant, "lease": lease},
    )
    claimed = [Claimed(**{**dict(r._mapping), "body": _json(r._mapping["body"])}) for r in rows]
    return sorted(claimed, key=lambda c: c.seq)


async def target_of(db: Database, service_id: UUID) -> Target | None:
    row = await db.fetch_one(
        """
        SELECT s.routing_key_enc, i.events_url, s.api_version, s.rate_limit_per_minute, s.health
        FROM pd_services s JOIN installations i ON i.id = s.installation_id
        WHERE s.id = :id
        """,
        {"id": service_id},
    )
    return None if row is None else Target(**dict(row._mapping))


async def reserve_budget(
    db: Database, *, event_id: UUID, routing_key_hash: str, limit: int, window: timedelta
) -> int | None:
    """Spend one of the key's sends in the window: the new attempt's id, or None when the
    budget is spent (the key is then paused until its oldest send leaves the window, and the
    event goes back to the queue untouched)."""
    async with db.transaction():
        await db.execute(
            "INSERT INTO dispatch_keys (routing_key_hash) VALUES (:h) ON CONFLICT DO NOTHING",
            {"h": routing_key_hash},
        )
        # The row lock makes count-then-insert atomic for this key across all workers.
        await db.execute(
            "SELECT 1 FROM dispatch_keys WHERE routing_key_hash = :h FOR UPDATE",
            {"h": routing_key_hash},
        )
        used = await db.fetch_one(
            """
            SELECT count(*) AS n, min(started_at) AS oldest FROM delivery_attempts
            WHERE routing_key_hash = :h
              AND started_at > clock_timestamp() - CAST(:window AS interval)
            """,
            {"h": routing_key_hash, "window": window},
        )
        assert used is not None
        if used._mapping["n"] >= limit:
            await db.execute(
                """
                UPDATE dispatch_keys
                SET paused_until = GREATEST(paused_until, CAST(:oldest AS timestamptz)
                    + CAST(:window AS interval))
                WHERE routing_key_hash = :h
                """,
                {"h": routing_key_hash, "oldest": used._mapping["oldest"], "window": window},
            )
            await release(db, event_id)
            return None
        # A worker that died mid-send left its attempt open; say so before the new one.
        await db.execute(
            """
            UPDATE delivery_attempts SET outcome = 'abandoned', finished_at = clock_timestamp(),
                error = 'the worker sending this attempt stopped before PagerDuty answered'
            WHERE event_id = :id AND finished_at IS NULL
            """,
            {"id": event_id},
        )
        attempt_id = await db.fetch_val(
            """
            INSERT INTO delivery_attempts (event_id, routing_key_hash)
            VALUES (:id, :h) RETURNING id
            """,
            {"id": event_id, "h": routing_key_hash},
        )
        await db.execute(
            "UPDATE events SET attempts = attempts + 1 WHERE id = :id", {"id": event_id}
        )
        assert isinstance(attempt_id, int)
        return attempt_id


async def release(db: Database, event_id: UUID) -> None:
    """Back to the queue as it was: no attempt was made."""
    await db.execute(
        """
        UPDATE events SET status = 'queued', lease_until = NULL
        WHERE id = :id AND status = 'sending'
        """,
        {"id": event_id},
    )


async def finish_attempt(
    db: Database,
    attempt_id: int,
    *,
    outcome: str,
    http_status: int | None,
    latency_ms: int,
    response: Mapping[str, Any] | None,
    error: str | None,
) -> None:
    await db.execute(
        """
        UPDATE delivery_attempts SET finished_at = clock_timestamp(), outcome = :outcome,
            http_status = :status, latency_ms = :latency, response = CAST(:response AS jsonb),
            error = :error
        WHERE id = :id
        """,
        {
            "id": attempt_id,
            "outcome": outcome,
            "status": http_status,
            "latency": latency_ms,
            "response": None if response is None else json.dumps(response),
            "error": error,
        },
    )


async def mark_delivered(db: Database, event_id: UUID, routing_key_hash: str) -> None:
    await db.execute(
        """
        UPDATE events SET status = 'delivered', finished_at = clock_timestamp(),
            lease_until = NULL, last_error = NULL
        WHERE id = :id
        """,
        {"id": event_id},
    )
    await db.execute(
        """
        UPDATE dispatch_keys SET backoff_level = 0, key_rejections = 0
        WHERE routing_key_hash = :h
        """,
        {"h": routing_key_hash},
    )


async def retry_key_now(db: Database, routing_key_hash: str) -> None:
    """Make the key's events that are waiting out a retry backoff due now.

    Called when PagerDuty accepts a retried event of the key: whatever made it fail (an outage,
    timeouts) is over, and the others need not wait out their backoff, up to the retry cap,
    to find out. They still spend the key's budget, so this cannot flood PagerDuty."""
    await db.execute(
        """
        UPDATE events SET next_attempt_at = clock_timestamp()
        WHERE routing_key_hash = :h AND status = 'queued' AND attempts > 0
          AND next_attempt_at > clock_timestamp()
        """,
        {"h": routing_key_hash},
    )


async def send_now(db: Database, tenant_id: UUID, event_id: UUID) -> bool:
    """An event held back before its first send (a test event's resolve) becomes due now.
    False when it is not waiting so (already sent, or not this tenant's)."""
    moved = await db.fetch_val(
        """
        UPDATE events SET next_attempt_at = clock_timestamp()
        WHERE id = :id AND tenant_id = :tenant_id AND status = 'queued' AND attempts = 0
          AND next_attempt_at > clock_timestamp()
        RETURNING id
        """,
        {"id": event_id, "tenant_id": tenant_id},
    )
    if moved is None:
        return False
    await db.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return True


async def mark_final(
    db: Database, event_id: UUID, *, status: str, error: str, pd_errors: Sequence[str] = ()
) -> None:
    """failed (never to be accepted) or cancelled: the event leaves the queue for good."""
    await db.execute(
        """
        UPDATE events SET status = :status, finished_at = clock_timestamp(), lease_until = NULL,
            last_error = :error, pd_errors = CAST(:pd_errors AS jsonb)
        WHERE id = :id
        """,
        {
            "id": event_id,
            "status": status,
            "error": error,
            "pd_errors": json.dumps(list(pd_errors)),
        },
    )


async def schedule_retry(db: Database, event_id: UUID, *, delay: timedelta, error: str) -> None:
    await db.execute(
        """
        UPDATE events SET status = 'queued', lease_until = NULL, last_error = :error,
            next_attempt_at = clock_timestamp() + CAST(:delay AS interval)
        WHERE id = :id
        """,
        {"id": event_id, "error": error, "delay": delay},
    )


async def pause_key(
    db: Database, routing_key_hash: str, pause_for_level: Callable[[int], timedelta]
) -> None:
    """PagerDuty said 429: rest this key, and only this key. The pause grows once per episode:
    the many sends in flight when PagerDuty starts refusing all come back 429 together, and
    counting each would push one episode's pause to the cap. Call inside a transaction."""
    row = await db.fetch_one(
        """
        SELECT backoff_level, paused_until > clock_timestamp() AS paused
        FROM dispatch_keys WHERE routing_key_hash = :h FOR UPDATE
        """,
        {"h": routing_key_hash},
    )
    if row is None or row._mapping["paused"]:
        return
    level = int(row._mapping["backoff_level"])
    await db.execute(
        """
        UPDATE dispatch_keys SET backoff_level = :level,
            paused_until = clock_timestamp() + CAST(:pause AS interval)
        WHERE routing_key_hash = :h
        """,
        {"h": routing_key_hash, "level": level + 1, "pause": pause_for_level(level)},
    )


async def hold(db: Database, event_id: UUID, *, error: str) -> None:
    """Kept, not sent, until its service is healthy again."""
    await db.execute(
        """
        UPDATE events SET status = 'held', lease_until = NULL, last_error = :error
        WHERE id = :id
        """,
        {"id": event_id, "error": error},
    )


async def count_key_rejection(db: Database, routing_key_hash: str) -> int:
    """One more answer in a row saying the routing key itself is wrong; returns the count."""
    value = await db.fetch_val(
        """
        UPDATE dispatch_keys SET key_rejections = key_rejections + 1
        WHERE routing_key_hash = :h RETURNING key_rejections
        """,
        {"h": routing_key_hash},
    )
    return int(value or 0)


async def mark_key_unhealthy(db: Database, routing_key_hash: str, *, error: str) -> None:
    """PagerDuty keeps refusing this routing key: show its services unhealthy and hold what is
    queued for it (kept, visible) until the admin reconnects, re-keys or removes them."""
    await db.execute(
        """
        UPDATE pd_services SET health = 'unhealthy', health_reason = :reason, updated_at = now()
        WHERE routing_key_hash = :h AND health = 'healthy'
        """,
        {"h": routing_key_hash, "reason": f"PagerDuty rejects its routing key: {error}"},
    )
    await db.execute(
        """
        UPDATE events SET status = 'held', lease_until = NULL
        WHERE routing_key_hash = :h AND status = 'queued'
        """,
        {"h": routing_key_hash},
    )


async def next_due_in(db: Database) -> timedelta | None:
    """How long until the earliest queued event becomes due, its key's pause included."""
    value = await db.fetch_val(
        """
        SELECT min(GREATEST(q.due, COALESCE(k.paused_until, '-infinity'))) - clock_timestamp()
        FROM (
            SELECT routing_key_hash, min(next_attempt_at) AS due FROM events
            WHERE status = 'queued' GROUP BY routing_key_hash
        ) AS q
        LEFT JOIN dispatch_keys k ON k.routing_key_hash = q.routing_key_hash
        """
    )
    return value if isinstance(value, timedelta) else None


EVENT_COLUMNS = """
    e.id, e.seq, e.tenant_id, e.service_id, s.name AS service_name, e.dedup_key, e.kind, e.api,
    e.body, e.notes, e.source, e.status, e.attempts, e.next_attempt_at, e.created_at,
    e.finished_at, e.last_error, e.pd_errors, i.status AS incident_status,
    i.changed_by AS incident_changed_by, i.changed_at AS incident_changed_at,
    i.html_url AS incident_url, e.alert_id
"""
EVENT_JOINS = """
    events e LEFT JOIN pd_services s ON s.id = e.service_id
    LEFT JOIN incident_states i ON i.service_id = e.service_id AND i.dedup_key = e.dedup_key
"""


def _event(row: Record) -> Event:
    m = dict(row._mapping)
    m["body"] = _json(m["body"])
    m["notes"] = tuple(m["notes"] or ())
    m["pd_errors"] = tuple(_json(m["pd_errors"]) or ())
    return Event(**m)


async def list_events(
    db: Database,
    tenant_id: UUID,
    *,
    status: str | None = None,
    service_id: UUID | None = None,
    dedup_key: str | None = None,
    alert_id: UUID | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[Event]:
    rows = await db.fetch_all(
        f"""
        SELECT {EVENT_COLUMNS}
        FROM {EVENT_JOINS}
        WHERE e.tenant_id = :tenant_id
          AND (CAST(:status AS text) IS NULL OR e.status = :status)
          AND (CAST(:service_id AS uuid) IS NULL OR e.service_id = :service_id)
          AND (CAST(:dedup_key AS text) IS NULL OR e.dedup_key = :dedup_key)
          AND (CAST(:alert_id AS uuid) IS NULL OR e.alert_id = :alert_id)
          AND (CAST(:before AS bigint) IS NULL OR e.seq < :before)
        ORDER BY e.seq DESC LIMIT :limit
        """,
        {
            "tenant_id": tenant_id,
            "status": status,
            "service_id": service_id,
            "dedup_key": dedup_key,
            "alert_id": alert_id,
            "before": before_seq,
            "limit": limit,
        },
    )
    return [_event(r) for r in rows]


async def get_event(db: Database, tenant_id: UUID, event_id: UUID) -> Event | None:
    row = await db.fetch_one(
        f"""
        SELECT {EVENT_COLUMNS}
        FROM {EVENT_JOINS}
        WHERE e.tenant_id = :tenant_id AND e.id = :id
        """,
        {"tenant_id": tenant_id, "id": event_id},
    )
    return None if row is None else _event(row)


async def list_attempts(db: Database, event_id: UUID) -> list[Attempt]:
    rows = await db.fetch_all(
        """
        SELECT id, started_at, finished_at, latency_ms, http_status, outcome, response, error
        FROM delivery_attempts WHERE event_id = :id ORDER BY id
        """,
        {"id": event_id},
    )
    return [
        Attempt(**{**dict(r._mapping), "response": _json(r._mapping["response"])}) for r in rows
    ]


async def outbox_snapshot(db: Database) -> tuple[dict[str, int], float]:
    """Unfinished events by status, and how long the longest-waiting due event has been due.

    Both read only the partial indexes over unfinished events, so a scrape costs the same with
    a million delivered events in the table as with none."""
    rows = await db.fetch_all(
        """
        SELECT status, count(*) AS n FROM events
        WHERE status IN ('queued', 'sending', 'held') GROUP BY status
        """
    )
    oldest = await db.fetch_val(
        """
        SELECT EXTRACT(EPOCH FROM clock_timestamp() - min(next_attempt_at)) FROM events
        WHERE status = 'queued' AND next_attempt_at <= clock_timestamp()
        """
    )
    by_status = {status: 0 for status in ("queued", "sending", "held")}
    by_status.update({str(row._mapping["status"]): int(row._mapping["n"]) for row in rows})
    return by_status, float(oldest or 0.0)
