"""SQL of the outbox: enqueue, claim, spend a key's budget, record answers, read the log.

An event's states (`skipped` events are born final and never move):

                       claim (lease_token + 1)
           ┌─────────────────────────────────────────────┐
           │                                             ▼
    ──▶ queued ◀──── release · schedule_retry ──────── sending ───▶ delivered · failed · cancelled
         ▲  │                                            │
         │  └─────────────────▶ held ◀────── hold ───────┘
         └───── healthy again ───┘

- release: no attempt was made (budget spent, key or host saturated); schedule_retry: 5xx,
  timeout, 429, a key refusal not yet believed; hold: the service is unhealthy, or PagerDuty
  refused its key repeatedly (the key's other queued events are held with it).
- delivered: 202/200; failed: 400, or retries gave up; cancelled: the service was removed.
- Retiring services (disconnect) cancels their queued, held and sending events.
- A `sending` event whose lease ran out is claimed again as it stands (its worker died or
  stalled): a new lease, a new token.

**Fenced.** Every claim takes a new lease and bumps the event's `lease_token`; the claim
returns it (`Claimed.lease_token`) and it is the sender's fencing token. Every write a sender
makes to its event after the claim (release, the attempt's opening, the outcome: delivered,
failed, cancelled, held, requeued) applies only `WHERE status = 'sending' AND lease_token =
:token` (`FENCE`). Recording an answer starts by locking the event under that condition
(`fence`): when it holds, the outcome and its effects on the key (budget pause, 429 pause,
timeouts, key rejections, health) are written in that transaction; when it does not, the
attempt gets what PagerDuty said, marked late, and nothing else changes. A sender whose lease
ran out but was never taken over still holds the token: nobody else can have sent the event,
so its outcome stands. Sends are time-boxed to end before the lease does (worker.py), so a
sender whose lease is taken over has finished talking to PagerDuty: a stale trigger can
neither arrive after its acknowledge nor put a delivered event back in the queue.

**Isolated.** A claim skips keys that have `max_in_flight_per_key` sends with a live lease
(counted over all workers, from a small index of `sending` events) and takes at most the room
left of the others; it skips keys of a PagerDuty host (`dispatch_keys.host`) the claiming
worker has no room for, and gives each host no more of the claim than its room. The cap per
key is exact across workers where it matters: an attempt is opened only under the key's row
lock, after counting the key's open attempts.

Claiming (one statement): the (tenant, routing key) pairs with pending events are read from an
index and paused or saturated keys dropped; for each open pair, its oldest claimable events
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
from typing import Any, Literal
from uuid import UUID

from databases import Database

# The read side (the delivery log) has a module of its own; callers elsewhere import it here.
from app.dispatch.log_store import Attempt as Attempt
from app.dispatch.log_store import Event as Event
from app.dispatch.log_store import from_jsonb
from app.dispatch.log_store import get_event as get_event
from app.dispatch.log_store import list_attempts as list_attempts
from app.dispatch.log_store import list_events as list_events
from app.dispatch.log_store import outbox_snapshot as outbox_snapshot

NOTIFY_CHANNEL = "pdconnect_events"
PENDING = ("queued", "sending", "held")
# Every write a sender makes to its event after the claim carries this condition: the event is
# still being sent, under the lease this sender's claim took (see the module docstring).
FENCE = "status = 'sending' AND lease_token = :token"


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
    # The fencing token: this claim's lease, which every later write of the sender must hold.
    lease_token: int


@dataclass(frozen=True)
class Target:
    """Where and how a service's events go; the key is still encrypted."""

    routing_key_enc: str
    events_url: str
    api_version: str
    rate_limit_per_minute: int
    health: str


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
UPDATE events SET status = 'sending', lease_until = clock_timestamp() + CAST(:lease AS interval),
    lease_token = lease_token + 1
WHERE id IN (
    SELECT id FROM events
    WHERE id IN (
        SELECT turns.id FROM (
            SELECT ranked.*, row_number() OVER (
                PARTITION BY ranked.host ORDER BY ranked.turn, ranked.seq) AS host_rank
            FROM (
                SELECT c.id, c.seq, open_keys.host, open_keys.host_room,
                    -- Each tenant's oldest first, one tenant's turn at a time: an alert storm
                    -- in one tenant waits behind another tenant's single page, never the
                    -- other way round.
                    row_number() OVER (PARTITION BY open_keys.tenant_id ORDER BY c.seq) AS turn
                FROM (
                    -- Every (tenant, key) with pending events, from the index alone; paused
                    -- keys drop out here, before any of their events is looked at.
                    SELECT p.tenant_id, p.routing_key_hash, k.host,
                        -- Room under the per-key cap: sends with a live lease, any worker's.
                        :key_cap - (
                            SELECT count(*) FROM events s
                            WHERE s.routing_key_hash = p.routing_key_hash
                              AND s.status = 'sending' AND s.lease_until > clock_timestamp()
                        ) AS key_room,
                        -- Room under this worker's cap for the key's PagerDuty host.
                        COALESCE(CAST(CAST(:host_rooms AS jsonb) ->> k.host AS integer), :batch)
                            AS host_room
                    FROM (
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
                    LIMIT LEAST(:per_tenant, open_keys.key_room)
                ) AS c
                -- A saturated key or host is skipped, not waited for: its events stay queued.
                WHERE open_keys.key_room > 0 AND open_keys.host_room > 0
            ) AS ranked
        ) AS turns
        -- A host with room for n more sends takes the n best turns of this claim.
        WHERE turns.host_rank <= turns.host_room
        ORDER BY turns.turn, turns.seq
        LIMIT :batch
    )
    AND ((status = 'queued' AND next_attempt_at <= clock_timestamp())
         OR (status = 'sending' AND lease_until < clock_timestamp()))
    FOR UPDATE SKIP LOCKED
)
RETURNING id, seq, tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body,
    attempts, created_at, lease_token
"""


async def claim(
    db: Database,
    *,
    batch: int,
    per_tenant: int,
    lease: timedelta,
    max_in_flight_per_key: int,
    host_rooms: Mapping[str, int],
) -> list[Claimed]:
    """Lease due events. `host_rooms`: how many more sends this worker may start to each
    PagerDuty host it is sending to (a host it is not sending to is not listed)."""
    rows = await db.fetch_all(
        CLAIM,
        {
            "batch": batch,
            "per_tenant": per_tenant,
            "lease": lease,
            "key_cap": max_in_flight_per_key,
            "host_rooms": json.dumps(dict(host_rooms)),
        },
    )
    claimed = [
        Claimed(**{**dict(r._mapping), "body": from_jsonb(r._mapping["body"])}) for r in rows
    ]
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


# Why reserve_budget opened no attempt: the key's budget is spent (the key now rests), the key
# has its cap of sends in flight (counted across every worker), or the lease was lost.
Refusal = Literal["budget_spent", "key_busy", "lease_lost"]


async def reserve_budget(
    db: Database,
    claimed: Claimed,
    *,
    host: str,
    limit: int,
    window: timedelta,
    max_in_flight: int,
    lease: timedelta,
) -> int | Refusal:
    """Spend one of the key's sends in the window and open an attempt: its id, or why not.
    When not, the event goes back to the queue untouched; a spent budget also pauses the key
    until its oldest send leaves the window."""
    h = claimed.routing_key_hash
    async with db.transaction():
        await learn_host(db, h, host)
        # The row lock makes count-then-insert atomic for this key across all workers: the
        # budget and the cap on sends in flight are exact, however many workers claim.
        await db.execute(
            "SELECT 1 FROM dispatch_keys WHERE routing_key_hash = :h FOR UPDATE", {"h": h}
        )
        used = await db.fetch_one(
            """
            SELECT count(*) AS n, min(started_at) AS oldest FROM delivery_attempts
            WHERE routing_key_hash = :h
              AND started_at > clock_timestamp() - CAST(:window AS interval)
            """,
            {"h": h, "window": window},
        )
        assert used is not None
        if used._mapping["n"] >= limit:
            until = "CAST(:oldest AS timestamptz) + CAST(:window AS interval)"
            await db.execute(
                f"""
                UPDATE dispatch_keys SET paused_until = GREATEST(paused_until, {until}),
                    pause_reason = CASE WHEN paused_until >= {until} THEN pause_reason
                        ELSE :reason END
                WHERE routing_key_hash = :h
                """,
                {
                    "h": h,
                    "oldest": used._mapping["oldest"],
                    "window": window,
                    "reason": f"waiting: its routing key has spent its budget of {limit} "
                    f"events in {window.total_seconds():g} seconds",
                },
            )
            await release(db, claimed)
            return "budget_spent"
        # Attempts still waiting for PagerDuty; one older than a lease is over (its send was
        # time-boxed below the lease), whatever its worker recorded.
        in_flight = await db.fetch_val(
            """
            SELECT count(*) FROM delivery_attempts
            WHERE routing_key_hash = :h AND finished_at IS NULL
              AND started_at > clock_timestamp() - CAST(:lease AS interval)
            """,
            {"h": h, "lease": lease},
        )
        if int(in_flight) >= max_in_flight:
            await release(db, claimed)
            return "key_busy"
        counted = await db.fetch_val(
            f"UPDATE events SET attempts = attempts + 1 WHERE id = :id AND {FENCE} RETURNING id",
            {"id": claimed.id, "token": claimed.lease_token},
        )
        if counted is None:
            return "lease_lost"
        # An attempt left open under an earlier lease: its worker died, or is still waiting
        # for an answer it can no longer act on. One whose sender is recording it right now
        # (its row locked) is skipped: that sender writes its own outcome.
        await db.execute(
            """
            UPDATE delivery_attempts SET outcome = 'abandoned', finished_at = clock_timestamp(),
                error = 'its lease ran out before PagerDuty answered; another attempt took over'
            WHERE id IN (
                SELECT id FROM delivery_attempts
                WHERE event_id = :id AND finished_at IS NULL FOR UPDATE SKIP LOCKED
            )
            """,
            {"id": claimed.id},
        )
        attempt_id = await db.fetch_val(
            """
            INSERT INTO delivery_attempts (event_id, routing_key_hash, lease_token)
            VALUES (:id, :h, :token) RETURNING id
            """,
            {"id": claimed.id, "h": h, "token": claimed.lease_token},
        )
        assert isinstance(attempt_id, int)
        return attempt_id


async def learn_host(db: Database, routing_key_hash: str, host: str) -> None:
    """Where the key's events go, so that claims can skip the key while its host is full."""
    await db.execute(
        """
        INSERT INTO dispatch_keys (routing_key_hash, host) VALUES (:h, :host)
        ON CONFLICT (routing_key_hash) DO UPDATE SET host = EXCLUDED.host
        WHERE dispatch_keys.host IS DISTINCT FROM EXCLUDED.host
        """,
        {"h": routing_key_hash, "host": host},
    )


async def release(db: Database, claimed: Claimed) -> bool:
    """Back to the queue as it was: no attempt was made."""
    moved = await db.fetch_val(
        f"""
        UPDATE events SET status = 'queued', lease_until = NULL
        WHERE id = :id AND {FENCE} RETURNING id
        """,
        {"id": claimed.id, "token": claimed.lease_token},
    )
    return moved is not None


async def fence(db: Database, claimed: Claimed) -> bool:
    """Whether the event is still `sending` under this claim's lease; if so, it stays so until
    the transaction ends (the row is locked: no claim can take it over meanwhile). Call first
    in the transaction that records a send's outcome."""
    row = await db.fetch_val(
        f"SELECT id FROM events WHERE id = :id AND {FENCE} FOR UPDATE",
        {"id": claimed.id, "token": claimed.lease_token},
    )
    return row is not None


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


async def mark_delivered(db: Database, claimed: Claimed) -> bool:
    delivered = await db.fetch_val(
        f"""
        UPDATE events SET status = 'delivered', finished_at = clock_timestamp(),
            lease_until = NULL, last_error = NULL
        WHERE id = :id AND {FENCE} RETURNING id
        """,
        {"id": claimed.id, "token": claimed.lease_token},
    )
    if delivered is None:
        return False
    await db.execute(
        """
        UPDATE dispatch_keys SET backoff_level = 0, key_rejections = 0, timeouts = 0
        WHERE routing_key_hash = :h
        """,
        {"h": claimed.routing_key_hash},
    )
    return True


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
    db: Database, claimed: Claimed, *, status: str, error: str, pd_errors: Sequence[str] = ()
) -> bool:
    """failed (never to be accepted) or cancelled: the event leaves the queue for good."""
    done = await db.fetch_val(
        f"""
        UPDATE events SET status = :status, finished_at = clock_timestamp(), lease_until = NULL,
            last_error = :error, pd_errors = CAST(:pd_errors AS jsonb)
        WHERE id = :id AND {FENCE} RETURNING id
        """,
        {
            "id": claimed.id,
            "token": claimed.lease_token,
            "status": status,
            "error": error,
            "pd_errors": json.dumps(list(pd_errors)),
        },
    )
    return done is not None


async def schedule_retry(db: Database, claimed: Claimed, *, delay: timedelta, error: str) -> bool:
    queued = await db.fetch_val(
        f"""
        UPDATE events SET status = 'queued', lease_until = NULL, last_error = :error,
            next_attempt_at = clock_timestamp() + CAST(:delay AS interval)
        WHERE id = :id AND {FENCE} RETURNING id
        """,
        {"id": claimed.id, "token": claimed.lease_token, "error": error, "delay": delay},
    )
    return queued is not None


async def pause_key(
    db: Database,
    routing_key_hash: str,
    pause_for_level: Callable[[int], timedelta],
    *,
    reason: str,
) -> None:
    """PagerDuty said 429, or keeps not answering: rest this key, and only this key. The pause
    grows once per episode: the many sends in flight when PagerDuty starts refusing all come
    back together, and counting each would push one episode's pause to the cap. `reason` is
    shown on the key's waiting events. Call inside a transaction."""
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
        UPDATE dispatch_keys SET backoff_level = :level, pause_reason = :reason,
            paused_until = clock_timestamp() + CAST(:pause AS interval)
        WHERE routing_key_hash = :h
        """,
        {
            "h": routing_key_hash,
            "level": level + 1,
            "pause": pause_for_level(level),
            "reason": reason,
        },
    )


async def hold(db: Database, claimed: Claimed, *, error: str) -> bool:
    """Kept, not sent, until its service is healthy again."""
    held = await db.fetch_val(
        f"""
        UPDATE events SET status = 'held', lease_until = NULL, last_error = :error
        WHERE id = :id AND {FENCE} RETURNING id
        """,
        {"id": claimed.id, "token": claimed.lease_token, "error": error},
    )
    return held is not None


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


async def count_timeout(db: Database, routing_key_hash: str) -> int:
    """One more send to this key without an answer in time; returns how many since the key's
    last delivery."""
    value = await db.fetch_val(
        """
        UPDATE dispatch_keys SET timeouts = timeouts + 1
        WHERE routing_key_hash = :h RETURNING timeouts
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


async def next_due_in(
    db: Database, *, max_in_flight_per_key: int, full_hosts: Sequence[str]
) -> timedelta | None:
    """How long until the earliest queued event becomes due, its key's pause included. Keys
    with their cap of sends in flight, and keys of a host this worker has no room for, are
    left out: a finished send wakes the worker for them, not the clock."""
    value = await db.fetch_val(
        """
        SELECT min(GREATEST(q.due, COALESCE(k.paused_until, '-infinity'))) - clock_timestamp()
        FROM (
            SELECT routing_key_hash, min(next_attempt_at) AS due FROM events
            WHERE status = 'queued' GROUP BY routing_key_hash
        ) AS q
        LEFT JOIN dispatch_keys k ON k.routing_key_hash = q.routing_key_hash
        WHERE (k.host IS NULL OR k.host <> ALL(CAST(:full_hosts AS text[])))
          AND (
            SELECT count(*) FROM events s
            WHERE s.routing_key_hash = q.routing_key_hash
              AND s.status = 'sending' AND s.lease_until > clock_timestamp()
          ) < :key_cap
        """,
        {"full_hosts": list(full_hosts), "key_cap": max_in_flight_per_key},
    )
    return value if isinstance(value, timedelta) else None
