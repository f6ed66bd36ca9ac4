"""Leasing due events to a dispatcher, and the fence every later write of its sender passes.

Claiming (one statement): the (tenant, routing key) pairs with pending events are read from an
index and paused or saturated keys dropped; for each open pair, its oldest claimable events
(`per_tenant_scan`); these are interleaved by rank so each tenant gets a turn before any gets
a second, then locked with SKIP LOCKED and leased. An event is claimable when it is due, its
key is not paused, and no earlier event of the same (routing key, dedup key) is still pending:
that last rule is the ordering promise, and it holds across workers because an event leaves
the pending states only for a final one. The caps (`max_in_flight_per_key`, the rooms per
PagerDuty host) are the dispatcher's to choose; the statement only honours them.

Times are the database's (`clock_timestamp()`), so workers on several machines agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from databases import Database

# Every write a sender makes to its event after the claim carries this condition: the event is
# still being sent, under the lease this sender's claim took (see app/outbox/__init__.py).
FENCE = "status = 'sending' AND lease_token = :token"


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
    claimed = [Claimed(**{**dict(r._mapping), "body": _jsonb(r._mapping["body"])}) for r in rows]
    return sorted(claimed, key=lambda c: c.seq)


def _jsonb(value: Any) -> Any:
    """jsonb comes back as text through `databases`."""
    return json.loads(value) if isinstance(value, str) else value


async def fence(db: Database, claimed: Claimed) -> bool:
    """Whether the event is still `sending` under this claim's lease; if so, it stays so until
    the transaction ends (the row is locked: no claim can take it over meanwhile). Call first
    in the transaction that records a send's outcome."""
    row = await db.fetch_val(
        f"SELECT id FROM events WHERE id = :id AND {FENCE} FOR UPDATE",  # noqa: S608
        {"id": claimed.id, "token": claimed.lease_token},
    )
    return row is not None


async def release(db: Database, claimed: Claimed) -> bool:
    """Back to the queue as it was: no attempt was made."""
    moved = await db.fetch_val(
        f"""
        UPDATE events SET status = 'queued', lease_until = NULL
        WHERE id = :id AND {FENCE} RETURNING id
        """,  # noqa: S608 - only FENCE, a constant
        {"id": claimed.id, "token": claimed.lease_token},
    )
    return moved is not None
