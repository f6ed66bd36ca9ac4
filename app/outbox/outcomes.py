"""What a sender writes to its event after PagerDuty answered (or could not be asked).

Each write applies only under the sender's fence (`FENCE`, claims.py) and says whether it did:
False means the lease passed to another claim and the event was left as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from databases import Database

from app.outbox.claims import FENCE, Claimed
from app.outbox.ready import keys_have_work
from app.outbox.states import EventStatus


@dataclass(frozen=True)
class Beside:
    """A caller's own writes to run in the statement that records deliveries, so the two share
    one round trip and one commit: common table expressions (`name AS (…)`, comma-separated)
    that may read the CTE `delivered` (the ids of the events whose fence held), and their
    parameters (named apart from `event_ids` and `event_tokens`)."""

    sql: str
    params: Mapping[str, Any]


async def mark_delivered(db: Database, claimed: Claimed, beside: Beside | None = None) -> bool:
    [delivered] = await mark_delivered_many(db, [claimed], beside)
    return delivered


async def mark_delivered_many(
    db: Database, claimed: Sequence[Claimed], beside: Beside | None = None
) -> list[bool]:
    """Many deliveries in one statement (a worker's concurrent sends record theirs together),
    each fenced by its own lease token; whether each applied, in order."""
    if not claimed:
        return []
    ctes = f", {beside.sql}" if beside is not None else ""
    # The text is one of a handful (the callers' fixed `Beside`), so asyncpg prepares each
    # once per connection, like any constant statement. Its arrays (and the `Beside`'s) are
    # read through scalar subqueries, so that PostgreSQL keeps one plan for it rather than
    # planning it again for every batch (app/alerts/store.py `latest_lives` says why): planned
    # each time, this statement cost a lone delivery 0.6 ms of database time of its 1 ms.
    rows = await db.fetch_all(
        f"""
        WITH delivered AS (
            UPDATE events e SET status = 'delivered', finished_at = clock_timestamp(),
                lease_until = NULL, last_error = NULL
            FROM unnest(
                (SELECT CAST(:event_ids AS uuid[])), (SELECT CAST(:event_tokens AS bigint[]))
            ) AS f (id, token)
            WHERE e.id = f.id AND e.status = 'sending' AND e.lease_token = f.token
            RETURNING e.id
        ){ctes}
        SELECT id FROM delivered
        """,  # noqa: S608 - the caller's own fixed SQL
        {
            **(beside.params if beside is not None else {}),
            "event_ids": [c.id for c in claimed],
            "event_tokens": [c.lease_token for c in claimed],
        },
    )
    done = {r["id"] for r in rows}
    return [c.id in done for c in claimed]


async def mark_final(
    db: Database,
    claimed: Claimed,
    *,
    status: Literal[EventStatus.FAILED, EventStatus.CANCELLED],
    error: str,
    pd_errors: Sequence[str] = (),
) -> bool:
    """FAILED (never to be accepted) or CANCELLED: the event leaves the queue for good."""
    done = await db.fetch_val(
        f"""
        UPDATE events SET status = :status, finished_at = clock_timestamp(), lease_until = NULL,
            last_error = :error, pd_errors = CAST(:pd_errors AS jsonb)
        WHERE id = :id AND {FENCE} RETURNING id
        """,  # noqa: S608 - only FENCE, a constant
        {
            "id": claimed.id,
            "token": claimed.lease_token,
            "status": str(status),
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
        """,  # noqa: S608 - only FENCE, a constant
        {"id": claimed.id, "token": claimed.lease_token, "error": error, "delay": delay},
    )
    if queued is None:
        return False
    # Still pending, so its key keeps its ready row (ready.py); asserted as every path to
    # `queued` does, since a retry is what the claims must find again.
    await keys_have_work(db, [(claimed.tenant_id, claimed.routing_key_hash)])
    return True


async def hold(db: Database, claimed: Claimed, *, error: str) -> bool:
    """This one event is kept, not sent, until its service is released (services.py)."""
    held = await db.fetch_val(
        f"""
        UPDATE events SET status = 'held', lease_until = NULL, last_error = :error
        WHERE id = :id AND {FENCE} RETURNING id
        """,  # noqa: S608 - only FENCE, a constant
        {"id": claimed.id, "token": claimed.lease_token, "error": error},
    )
    return held is not None
