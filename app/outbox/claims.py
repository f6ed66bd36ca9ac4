"""Leasing due events to a dispatcher, and the fence every later write of its sender passes.

Claiming (one statement) starts from the ready keys (ready.py), never from the events behind
them. For each tenant with work, its keys least recently looked at first, through an index:
paused keys and keys of a host this worker has no room for drop out, and so do keys with no
event due and no lease run out (one index probe each), until as many keys as the batch has
events are found. The tenants' lists are merged (each tenant's first key before any tenant's
second), and the keys locked SKIP LOCKED, so two workers claiming at once take different keys.
For each key, its oldest claimable events through the index of its pending events: at most the
room under its cap and its share of the batch (one event each when the keys are many). These
are interleaved (each key of a tenant one event before any gets a second, each tenant a turn
before any gets a second) and taken in that order while their bodies fit the bytes the
dispatcher has room for (the first whatever its size), locked with SKIP LOCKED and leased; the
keys looked at go to the back of their tenant's turns. What a claim reads is so bounded by its
batch and the tenants with work, never by the backlog: bench/claim.py measures it flat.

An event is claimable when it is due, its key is not paused, and no earlier event of the same
(routing key, dedup key) is still pending: that last rule is the ordering promise, and it holds
across workers because an event leaves the pending states only for a final one. The caps
(`max_in_flight_per_key`, the rooms per PagerDuty host) are the dispatcher's to choose; the
statement only honours them.

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

from app.outbox.ready import keys_have_work

# `claim`'s bound on bytes when it is given none: more than any claim's bodies add up to
# (PostgreSQL's largest bigint).
NO_BYTE_BOUND = 2**63 - 1

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
    # The body's size as its JSON text (`events.body_bytes`): what the claim counted against
    # its bound on bytes, and what the dispatcher counts as held until the event leaves it.
    body_bytes: int


CLAIM = """
WITH due_keys AS (
    -- Keys with pending events, from the ready keys alone (never from the events behind
    -- them). For each tenant with any, its keys least recently looked at first, through the
    -- index on (tenant, turn): paused keys and keys of a host this worker has no room for
    -- drop out, and so do keys with no event due and no lease run out (one index probe
    -- each), until :keys are found. Then the tenants' lists side by side, each tenant's first
    -- key before any tenant's second.
    SELECT x.* FROM (SELECT DISTINCT tenant_id FROM ready_keys) AS t
    CROSS JOIN LATERAL (
        SELECT o.*, row_number() OVER (ORDER BY o.turn_at) AS key_turn FROM (
            -- OFFSET 0 keeps the probes below out of this ordered scan: they run on its rows
            -- in turn order and stop at the limit.
            SELECT r.tenant_id, r.routing_key_hash, r.turn_at, k.host,
                -- Room under this worker's cap for the key's PagerDuty host; a key whose
                -- host is not known yet may go to any, so it gets the least room of them.
                COALESCE(
                    CAST(CAST(:host_rooms AS jsonb) ->> k.host AS integer), :unknown_room
                ) AS host_room
            FROM ready_keys r
            LEFT JOIN dispatch_keys k ON k.routing_key_hash = r.routing_key_hash
            WHERE r.tenant_id = t.tenant_id
              AND (k.paused_until IS NULL OR k.paused_until <= clock_timestamp())
            ORDER BY r.turn_at
            OFFSET 0
        ) AS o
        WHERE o.host_room > 0
          AND (EXISTS (
                  SELECT 1 FROM events q
                  WHERE q.routing_key_hash = o.routing_key_hash AND q.status = 'queued'
                    AND q.next_attempt_at <= clock_timestamp())
               OR EXISTS (
                  SELECT 1 FROM events s
                  WHERE s.routing_key_hash = o.routing_key_hash AND s.status = 'sending'
                    AND s.lease_until < clock_timestamp()))
        ORDER BY o.turn_at
        LIMIT :keys
    ) AS x
    ORDER BY x.key_turn, x.turn_at
    LIMIT :keys
),
picked AS (
    -- Another worker claiming the same keys right now keeps them; this one takes others.
    -- Each key's row locked through its primary key (LATERAL), not found by a scan of the
    -- whole table.
    SELECT r.tenant_id, r.routing_key_hash, d.host, d.host_room, d.key_turn
    FROM due_keys d
    CROSS JOIN LATERAL (
        SELECT l.tenant_id, l.routing_key_hash FROM ready_keys l
        WHERE l.tenant_id = d.tenant_id AND l.routing_key_hash = d.routing_key_hash
        FOR NO KEY UPDATE SKIP LOCKED
    ) AS r
),
candidates AS (
    SELECT c.id, c.seq, p.tenant_id, p.routing_key_hash, p.host, p.host_room, p.key_turn,
        row_number() OVER (PARTITION BY p.tenant_id, p.routing_key_hash ORDER BY c.seq)
            AS key_rank,
        -- An event written before its size was kept has its body measured here, and only
        -- such an event: COALESCE reads its second argument only for a NULL first.
        COALESCE(c.body_bytes, (
            SELECT octet_length(CAST(b.body AS text)) FROM events b WHERE b.id = c.id
        )) AS body_bytes
    FROM picked p
    CROSS JOIN (
        SELECT CAST(ceil(CAST(:batch AS numeric) / GREATEST(count(*), 1)) AS integer) AS n
        FROM picked
    ) AS share
    CROSS JOIN LATERAL (
        -- Room under the per-key cap: sends with a live lease, any worker's.
        SELECT :key_cap - count(*) AS room FROM events s
        WHERE s.routing_key_hash = p.routing_key_hash
          AND s.status = 'sending' AND s.lease_until > clock_timestamp()
    ) AS key_room
    CROSS JOIN LATERAL (
        -- The key's oldest claimable events, through its index of pending events.
        SELECT e.id, e.seq, e.body_bytes FROM events e
        WHERE e.tenant_id = p.tenant_id
          AND e.routing_key_hash = p.routing_key_hash
          AND e.status IN ('queued', 'sending')
          AND ((e.status = 'queued' AND e.next_attempt_at <= clock_timestamp())
               OR (e.status = 'sending' AND e.lease_until < clock_timestamp()))
          AND (e.dedup_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM events b
                WHERE b.routing_key_hash = e.routing_key_hash
                  AND b.dedup_key = e.dedup_key
                  AND b.seq < e.seq
                  AND b.status IN ('queued', 'sending', 'held')))
        ORDER BY e.seq
        -- A saturated key is skipped, not waited for: its events stay queued. A key gives
        -- no more than its share of the batch: with many keys that is one event, and one
        -- index probe, each.
        LIMIT GREATEST(LEAST(:per_tenant, key_room.room, share.n), 0)
    ) AS c
),
chosen AS (
    SELECT sized.id, sized.tenant_id, sized.routing_key_hash FROM (
        SELECT turns.id, turns.tenant_id, turns.routing_key_hash, turns.turn, turns.seq,
            row_number() OVER in_turn AS place,
            sum(turns.body_bytes) OVER (in_turn ROWS UNBOUNDED PRECEDING) AS bytes_so_far
        FROM (
            SELECT ranked.*, row_number() OVER (
                PARTITION BY ranked.host ORDER BY ranked.turn, ranked.seq) AS host_rank
            FROM (
                -- Each tenant's keys in turn, one event each before any gets a second;
                -- tenants side by side: an alert storm in one tenant waits behind another
                -- tenant's single page, never the other way round.
                SELECT candidates.*, row_number() OVER (
                    PARTITION BY tenant_id ORDER BY key_rank, key_turn, seq) AS turn
                FROM candidates
            ) AS ranked
        ) AS turns
        -- A host with room for n more sends takes the n best turns of this claim.
        WHERE turns.host_rank <= turns.host_room
        WINDOW in_turn AS (ORDER BY turns.turn, turns.seq)
    ) AS sized
    -- The best turns whose bodies add up to no more than :max_bytes, the dispatcher's room
    -- for bytes in hand: the bound cuts the same order the batch does, so it keeps the turns
    -- as they are. The first is taken whatever its size: an event larger than the room
    -- would otherwise never be claimed, and hold its dedup key's later events for ever.
    WHERE sized.place = 1 OR sized.bytes_so_far <= CAST(:max_bytes AS bigint)
    ORDER BY sized.turn, sized.seq
    LIMIT :batch
),
turned AS (
    -- The keys looked at go to the back of their tenant's turns, except those whose events
    -- lost only to this claim's size (its batch or its bytes): they keep their place for the
    -- next claim.
    UPDATE ready_keys r SET turn_at = clock_timestamp()
    FROM picked p
    WHERE r.tenant_id = p.tenant_id AND r.routing_key_hash = p.routing_key_hash
      AND (EXISTS (
              SELECT 1 FROM chosen c
              WHERE c.tenant_id = p.tenant_id AND c.routing_key_hash = p.routing_key_hash)
           OR NOT EXISTS (
              SELECT 1 FROM candidates c
              WHERE c.tenant_id = p.tenant_id AND c.routing_key_hash = p.routing_key_hash))
)
UPDATE events SET status = 'sending', lease_until = clock_timestamp() + CAST(:lease AS interval),
    lease_token = lease_token + 1
WHERE id IN (
    SELECT id FROM events
    WHERE id IN (SELECT id FROM chosen)
      AND ((status = 'queued' AND next_attempt_at <= clock_timestamp())
           OR (status = 'sending' AND lease_until < clock_timestamp()))
    FOR UPDATE SKIP LOCKED
)
RETURNING id, seq, tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body,
    attempts, created_at, lease_token,
    -- As the claim counted it (see `candidates`), an event written before 0023 included.
    COALESCE(body_bytes, octet_length(CAST(body AS text))) AS body_bytes
"""


async def claim(
    db: Database,
    *,
    batch: int,
    per_tenant: int,
    lease: timedelta,
    max_in_flight_per_key: int,
    host_rooms: Mapping[str, int],
    keys: int | None = None,
    max_bytes: int | None = None,
) -> list[Claimed]:
    """Lease due events. `host_rooms`: how many more sends this worker may start to each
    PagerDuty host it is sending to (a host it is not sending to is not listed; a key whose
    host no worker has recorded yet gets the least of these rooms, and at least one). `keys`: how
    many keys to look for (by default one per event wanted); each key found gives up to its
    share of the batch, so fewer keys give more events each. `max_bytes`: the most the claimed
    bodies may add up to (`Claimed.body_bytes`), except that the first event is claimed
    whatever its size; None for no bound (a dispatcher always sets one)."""
    rows = await db.fetch_all(
        CLAIM,
        {
            "batch": batch,
            # As many keys as asked: each key's share of the batch is then batch / keys. A key
            # that turns out to have less claimable (its due events wait behind an earlier
            # one in flight, or it is at its cap) makes the claim smaller; the next claim
            # looks at the keys after it.
            "keys": max(1, min(keys or batch, batch)),
            "per_tenant": per_tenant,
            "lease": lease,
            "key_cap": max_in_flight_per_key,
            "host_rooms": json.dumps(dict(host_rooms)),
            # At least one: a new key of a host with room is never held back by a full one
            # (its host is recorded once its first event is claimed).
            "unknown_room": max(1, min(host_rooms.values(), default=batch)),
            "max_bytes": NO_BYTE_BOUND if max_bytes is None else max(max_bytes, 0),
        },
    )
    claimed = [Claimed(**{**dict(r), "body": _jsonb(r["body"])}) for r in rows]
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
    if moved is None:
        return False
    # Sending to queued never leaves the pending states, so the key's row cannot have been
    # removed meanwhile (ready.py); asserted all the same, as every path to `queued` does.
    await keys_have_work(db, [(claimed.tenant_id, claimed.routing_key_hash)])
    return True
