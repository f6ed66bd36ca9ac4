"""Events entering the outbox, and a held-back event made due at once."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from databases import Database

from app.ids import new_uuid
from app.jsoncodec import dumps_text
from app.outbox.ready import KEYS_OF_WRITTEN, keys_have_work
from app.outbox.states import NOTIFY_CHANNEL, EventStatus
from app.outbox.wakeups import wake_dispatchers


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
    # QUEUED; HELD (its service is unhealthy); SKIPPED (recorded, nothing to send);
    # SUPPRESSED (recorded, deliberately not sent).
    status: EventStatus = EventStatus.QUEUED
    alert_id: UUID | None = None
    # Why it is skipped: shown where a failure's error would be.
    reason: str | None = None
    # Not sent before this much time has passed (a test event's resolve).
    due_in: timedelta | None = None
    # How it found its service, in words (the rule that matched, ...), for the history.
    routed_by: str | None = None


# One statement for any number of events: the arrays are the events' columns, in order. The
# status of an event for a service is read from the service's row here, not taken from the
# caller: routing works from a view of the tenant that may be a moment old (a cache), and an
# event for a service held since must be held too. `FOR KEY SHARE` keeps each service from being
# deleted until the transaction ends, so the check and the insert agree.
# The events' rows, from arrays of their columns (`g`), each with its status (`a`, from its
# service's row `s`) and its life's id (`p`, when the life was opened by the same statement).
_ROWS = """
INSERT INTO events (id, tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body,
    body_bytes, notes, source, status, alert_id, last_error, next_attempt_at, finished_at,
    routed_by)
SELECT g.id, g.tenant_id, g.service_id, g.routing_key_hash, g.dedup_key, g.kind, g.api,
    -- The body's size as sent here, measured on the text before it becomes jsonb (no second
    -- serialisation): what a claim counts against a dispatcher's bound on bytes in hand.
    CAST(g.body AS jsonb), octet_length(g.body),
    ARRAY(SELECT jsonb_array_elements_text(CAST(g.notes AS jsonb))),
    g.source, a.status, ALIVE_ID, g.reason, clock_timestamp() + g.due_in,
    CASE WHEN a.status IN ('skipped', 'suppressed') THEN clock_timestamp() END, g.routed_by
FROM unnest(
    CAST(:ids AS uuid[]), CAST(:tenant_ids AS uuid[]), CAST(:service_ids AS uuid[]),
    CAST(:routing_key_hashes AS text[]), CAST(:dedup_keys AS text[]), CAST(:kinds AS text[]),
    CAST(:apis AS text[]), CAST(:bodies AS text[]), CAST(:notes AS text[]),
    CAST(:sources AS text[]), CAST(:statuses AS text[]), CAST(:alert_ids AS uuid[]),
    CAST(:reasons AS text[]), CAST(:due_ins AS interval[]), CAST(:routed_bys AS text[])
) WITH ORDINALITY AS g(id, tenant_id, service_id, routing_key_hash, dedup_key, kind, api,
    body, notes, source, status, alert_id, reason, due_in, routed_by, n)
LEFT JOIN SERVICES AS s ON s.id = g.service_id
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN g.status IN ('skipped', 'suppressed') THEN g.status
        WHEN s.health = 'healthy' THEN 'queued'
        ELSE 'held'
    END AS status
) AS a
"""
# Rows are inserted in this order, so each event's seq is its place in acceptance order.
_IN_ORDER = "ORDER BY g.n"
_LOCKED_SERVICES = """(
    SELECT id, health FROM pd_services
    WHERE id = ANY(CAST(:service_ids AS uuid[])) FOR KEY SHARE
)"""

ENQUEUE = (
    _ROWS.replace("ALIVE_ID", "g.alert_id").replace("SERVICES", _LOCKED_SERVICES)
    # An event whose service is gone is not written: the caller is told (ServicesChanged).
    + "WHERE g.service_id IS NULL OR s.id IS NOT NULL\n"
    + _IN_ORDER
    + "\nRETURNING id, status\n"
)

# A batch written by one statement (`enqueue_together`): the services are locked first and
# `gate.ok` says whether all of them are still there; when one is not, no sub-statement writes
# anything and the caller is told (ServicesChanged), as a rolled-back transaction would have.
# The parts the caller gives come between the gate and the events; they define `planned` (an
# alert id as planned -> the id it has), which the events' `alert_id` goes through.
_GATE = f"""
locked AS {_LOCKED_SERVICES},
gate AS (
    SELECT count(*) = (SELECT count(DISTINCT w) FROM unnest(CAST(:service_ids AS uuid[])) AS w)
        AS ok
    FROM locked
)"""  # noqa: S608 - constants only, as below

_TOGETHER_WRITTEN = (
    "written AS ("  # noqa: S608
    + _ROWS.replace("ALIVE_ID", "COALESCE(p.actual, g.alert_id)").replace("SERVICES", "locked")
    + "LEFT JOIN planned AS p ON p.planned = g.alert_id\n"
    + "WHERE (SELECT ok FROM gate)\n"
    + _IN_ORDER
    + "\nRETURNING id, status, tenant_id, routing_key_hash\n)"
)

class ServicesChanged(Exception):
    """Some events were for services deleted since their request was routed: nothing was
    written for them, and the request is to be routed again."""

    def __init__(self, missing: set[UUID]) -> None:
        super().__init__(f"{len(missing)} event(s) were for services that no longer exist")
        self.missing = missing


def _columns(events: Sequence[NewEvent], ids: Sequence[UUID]) -> dict[str, Any]:
    for event in events:
        assert event.status in (
            EventStatus.QUEUED, EventStatus.HELD, EventStatus.SKIPPED, EventStatus.SUPPRESSED
        )
    return {
        "ids": ids,
        "tenant_ids": [e.tenant_id for e in events],
        "service_ids": [e.service_id for e in events],
        "routing_key_hashes": [e.routing_key_hash for e in events],
        "dedup_keys": [e.dedup_key for e in events],
        "kinds": [e.kind for e in events],
        "apis": [e.api for e in events],
        "bodies": [dumps_text(e.body) for e in events],
        "notes": [dumps_text(list(e.notes)) for e in events],
        "sources": [e.source for e in events],
        "statuses": [str(e.status) for e in events],
        "alert_ids": [e.alert_id for e in events],
        "reasons": [e.reason for e in events],
        "due_ins": [e.due_in or timedelta(0) for e in events],
        "routed_bys": [e.routed_by for e in events],
    }


async def enqueue(db: Database, events: Sequence[NewEvent]) -> list[tuple[UUID, EventStatus]]:
    """Insert events in order (their seq is their acceptance order) and wake the dispatchers,
    in one statement and one NOTIFY however many there are. Call inside the transaction that
    answers the senders: committed means accepted.

    An event for a service that has been deleted since it was routed raises ServicesChanged
    with nothing written of the rest either (the transaction is to be rolled back); one whose
    service is held (unhealthy) is written as held whatever `status` says."""
    if not events:
        return []
    ids = [new_uuid() for _ in events]
    rows = await db.fetch_all(ENQUEUE, _columns(events, ids))
    written = {r._mapping["id"]: EventStatus(r._mapping["status"]) for r in rows}
    if len(written) != len(ids):
        gone = {
            e.service_id
            for event_id, e in zip(ids, events, strict=True)
            if event_id not in written and e.service_id is not None
        }
        raise ServicesChanged(gone)
    await keys_have_work(
        db,
        (
            (e.tenant_id, e.routing_key_hash)
            for event_id, e in zip(ids, events, strict=True)
            if written[event_id] == EventStatus.QUEUED and e.routing_key_hash is not None
        ),
    )
    await wake_dispatchers(db)
    return [(event_id, written[event_id]) for event_id in ids]


@dataclass(frozen=True)
class Part:
    """Writes that go with a batch's events in `enqueue_together`'s one statement: `sql`, one
    or more common table expressions (`name AS (…)`, comma-separated), each writing only when
    `(SELECT ok FROM gate)`; `values`, their parameters (names of their own)."""

    sql: str
    values: Mapping[str, Any]


# The dispatchers' wake-up, naming the keys with new queued events (a few: with more, or with
# none, the payload is empty and means "look at everything"), so that a dispatcher can let a
# notice be when every key it names is resting (app/dispatch/worker.py).
WAKE_KEYS_MAX = 16
_WOKEN = f"""woken AS (
    SELECT pg_notify('{NOTIFY_CHANNEL}', COALESCE((
        SELECT CASE WHEN count(*) <= {WAKE_KEYS_MAX} THEN string_agg(h, ',') END
        FROM (
            SELECT DISTINCT routing_key_hash AS h FROM written
            WHERE status = 'queued' AND routing_key_hash IS NOT NULL
        ) AS keys), ''))
    -- Only events queued now are anyone's to send (held, suppressed or skipped ones are not).
    FROM gate WHERE ok AND EXISTS (SELECT 1 FROM written WHERE status = 'queued')
)"""  # noqa: S608 - constants only


@functools.lru_cache(maxsize=16)
def together(lives: str, after: str | None) -> str:
    """The statement of `enqueue_together` with these parts' SQL (the same text for the same
    parts: asyncpg prepares it once per connection)."""
    parts = [_GATE, lives, _TOGETHER_WRITTEN]
    if after is not None:
        parts.append(after)
    parts.append(KEYS_OF_WRITTEN)
    parts.append(_WOKEN)
    return (
        # Said first, for whoever reads pg_stat_activity: it keeps only the start of a long
        # statement (track_activity_query_size, 1 KiB by default).
        "/* ingest batch: INSERT INTO alerts, INSERT INTO events, INSERT INTO ready_keys, "  # noqa: S608
        "pg_notify */\n"
        "WITH "
        + ",\n".join(part.strip() for part in parts)
        # One result: the events written, the services still there, and the wake-up (a row of
        # nulls: a CTE that only reads is run when something reads it).
        + "\nSELECT id, status, NULL::uuid AS present FROM written"
        + "\nUNION ALL SELECT NULL, NULL, id FROM locked"
        + "\nUNION ALL SELECT NULL, NULL, NULL FROM woken"
    )


async def enqueue_together(
    db: Database, events: Sequence[NewEvent], *, lives: Part, after: Part | None = None
) -> list[tuple[UUID, EventStatus]]:
    """`enqueue`, with the writes of `lives` (which define `planned`, see `_GATE`) and `after`,
    as one statement: a batch's writes cost one round trip. Call inside the transaction that
    answers the senders, as `enqueue`. ServicesChanged with nothing written when a service is
    gone."""
    ids = [new_uuid() for _ in events]
    values = {**_columns(events, ids), **lives.values, **(after.values if after else {})}
    rows = await db.fetch_all(together(lives.sql, after.sql if after else None), values)
    written = {
        r._mapping["id"]: EventStatus(r._mapping["status"])
        for r in rows
        if r._mapping["id"] is not None
    }
    if len(written) != len(ids):
        present = {r._mapping["present"] for r in rows}
        raise ServicesChanged(
            {e.service_id for e in events if e.service_id is not None} - present
        )
    return [(event_id, written[event_id]) for event_id in ids]


async def send_now(db: Database, tenant_id: UUID, event_id: UUID) -> bool:
    """An event held back before its first send (a test event's resolve) becomes due now.
    False when it is not waiting so (already sent, or not this tenant's)."""
    moved = await db.fetch_val(
        """
        UPDATE events SET next_attempt_at = clock_timestamp()
        WHERE id = :id AND tenant_id = :tenant_id AND status = 'queued' AND attempts = 0
          AND next_attempt_at > clock_timestamp()
        RETURNING routing_key_hash
        """,
        {"id": event_id, "tenant_id": tenant_id},
    )
    if moved is None:
        return False
    await wake_dispatchers(db)
    await keys_have_work(db, [(tenant_id, moved)])
    return True
