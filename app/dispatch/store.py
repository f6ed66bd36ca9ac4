"""SQL of the dispatcher's own tables: each routing key's budget, pauses and counters
(`dispatch_keys`), and the delivery attempts. An event's status is the outbox's (app/outbox);
the writes here that sit beside an outcome run in the sender's fenced transaction.

**Isolated.** A claim (app/outbox/claims.py) skips keys that have `max_in_flight_per_key` sends
with a live lease (counted over all workers, from a small index of `sending` events) and takes
at most the room left of the others; it skips keys of a PagerDuty host (`dispatch_keys.host`)
the claiming worker has no room for, and gives each host no more of the claim than its room.
The cap per key is exact across workers where it matters: an attempt is opened only under the
key's row lock, after counting the key's open attempts (`reserve_budget`).

Times are the database's (`clock_timestamp()`), so workers on several machines agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

from databases import Database

from app.outbox.claims import FENCE, Claimed, release
from app.outbox.states import ServiceHealth


@dataclass(frozen=True)
class Target:
    """Where and how a service's events go; the key is still encrypted."""

    routing_key_enc: str
    events_url: str
    api_version: str
    rate_limit_per_minute: int
    health: ServiceHealth


async def target_of(db: Database, service_id: UUID) -> Target | None:
    row = await db.fetch_one(
        """
        SELECT s.routing_key_enc, i.events_url, s.api_version, s.rate_limit_per_minute, s.health
        FROM pd_services s JOIN installations i ON i.id = s.installation_id
        WHERE s.id = :id
        """,
        {"id": service_id},
    )
    if row is None:
        return None
    return Target(**{**dict(row._mapping), "health": ServiceHealth(row._mapping["health"])})


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


async def key_delivered(db: Database, routing_key_hash: str) -> None:
    """PagerDuty accepted an event of the key: whatever made it back off, refuse or time out
    is over. Call in the fenced transaction that marks the event delivered."""
    await db.execute(
        """
        UPDATE dispatch_keys SET backoff_level = 0, key_rejections = 0, timeouts = 0
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
