"""What the outbox tells a tenant and the operator: events with PagerDuty's answers and the
incident they became, each attempt, the queue's depth, the history a tenant pages through, and
what a waiting event waits for. Reads only; the outbox's state is written by app/outbox alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from databases import Database
from databases.interfaces import Record

from app.outbox.states import PENDING, EventStatus


def from_jsonb(value: Any) -> Any:
    """jsonb comes back as text through `databases`."""
    return json.loads(value) if isinstance(value, str) else value


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
    status: EventStatus
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
    # How it found its service, in words (app/ingest/intake.py); None before it was kept.
    routed_by: str | None = None


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


EVENT_COLUMNS = """
    e.id, e.seq, e.tenant_id, e.service_id, s.name AS service_name, e.dedup_key, e.kind, e.api,
    e.body, e.notes, e.source, e.status, e.attempts, e.next_attempt_at, e.created_at,
    e.finished_at,
    -- A queued event whose key rests (PagerDuty said 429, kept timing out, or its budget is
    -- spent) says why it waits.
    CASE WHEN e.status = 'queued' AND k.paused_until > clock_timestamp()
              AND k.pause_reason IS NOT NULL
         THEN k.pause_reason ELSE e.last_error END AS last_error,
    e.pd_errors, i.status AS incident_status,
    i.changed_by AS incident_changed_by, i.changed_at AS incident_changed_at,
    i.html_url AS incident_url, e.alert_id, e.routed_by
"""
EVENT_JOINS = """
    events e LEFT JOIN pd_services s ON s.id = e.service_id
    LEFT JOIN incident_states i ON i.service_id = e.service_id AND i.dedup_key = e.dedup_key
    LEFT JOIN dispatch_keys k ON k.routing_key_hash = e.routing_key_hash
"""


def _event(row: Record) -> Event:
    m = dict(row._mapping)
    m["body"] = from_jsonb(m["body"])
    m["status"] = EventStatus(m["status"])
    m["notes"] = tuple(m["notes"] or ())
    m["pd_errors"] = tuple(from_jsonb(m["pd_errors"]) or ())
    return Event(**m)


async def list_events(
    db: Database,
    tenant_id: UUID,
    *,
    status: EventStatus | None = None,
    service_id: UUID | None = None,
    dedup_key: str | None = None,
    alert_id: UUID | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[Event]:
    # Only the fixed column list and joins above are interpolated (S608).
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
        """,  # noqa: S608
        {
            "tenant_id": tenant_id,
            "status": None if status is None else str(status),
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
        """,  # noqa: S608
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
        Attempt(**{**dict(r._mapping), "response": from_jsonb(r._mapping["response"])})
        for r in rows
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
    by_status = {str(status): 0 for status in PENDING}
    by_status.update({str(row._mapping["status"]): int(row._mapping["n"]) for row in rows})
    return by_status, float(oldest or 0.0)


# The history: every event of the tenant, newest first, an alert's events together.
#
# The page is a list of alerts (an event with no alert, such as a change event or a skipped
# resolve, is its own). An alert stands at its newest event that passes the filters, its
# "head": paging walks heads by seq through the tenant's index (keyset, never OFFSET), and an
# event is a head when no later event of its alert passes the filters (one probe of the
# alert's index each). The count is of events.

HISTORY_STATUSES: dict[str, tuple[EventStatus, ...]] = {
    "delivered": (EventStatus.DELIVERED,),
    "waiting": (EventStatus.QUEUED, EventStatus.SENDING),
    "held": (EventStatus.HELD,),
    "failed": (EventStatus.FAILED,),
    "cancelled": (EventStatus.CANCELLED,),
    "skipped": (EventStatus.SKIPPED,),
}
# An alert's newest events shown with it; older ones are on its events' pages.
EVENTS_PER_ALERT = 10


@dataclass(frozen=True)
class HistoryFilter:
    # A key of HISTORY_STATUSES.
    status: str | None = None
    service_id: UUID | None = None
    # Searched in the alert's summary and dedup key, without case.
    text: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.status or self.service_id or self.text)


@dataclass(frozen=True)
class Delivery:
    """An event as the history shows it, with what explains its state: its alert's summary,
    its service's health, its routing key's rest, its last answer."""

    event: Event
    summary: str | None
    severity: str | None
    service_health: str | None
    service_health_reason: str | None
    key_paused_until: datetime | None
    key_pause_reason: str | None
    last_http_status: int | None
    last_attempt_error: str | None
    matches: bool = True


@dataclass(frozen=True)
class AlertGroup:
    """One alert on a page: its events, oldest first (its newest EVENTS_PER_ALERT), and how
    many earlier ones are left out."""

    alert_id: UUID | None
    deliveries: tuple[Delivery, ...]
    earlier: int

    @property
    def latest(self) -> Delivery:
        return self.deliveries[-1]

    @property
    def first(self) -> Delivery:
        return self.deliveries[0]


@dataclass(frozen=True)
class HistoryPage:
    groups: list[AlertGroup]
    # Events that pass the filters, on every page; when not `total_exact`, at least that many.
    total: int
    total_exact: bool
    # Cursors: `after` for the newer page, `before` for the older one (None: no such page).
    newer_after: int | None
    older_before: int | None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _status_list(name: str) -> str:
    """A status filter's statuses as SQL literals. Literals, not a parameter: a statement run
    often is planned once for any parameter (a generic plan), and only literals let that plan
    use the partial indexes over pending events. Only our own constants are written in."""
    statuses = HISTORY_STATUSES[name]
    assert all(str(s).isalpha() for s in statuses)
    return ", ".join(f"'{s}'" for s in statuses)


def _conditions(alias: str, where: HistoryFilter) -> list[str]:
    """The filters on status and service, as fixed fragments over `alias`."""
    out = []
    if where.status is not None:
        out.append(f"{alias}.status IN ({_status_list(where.status)})")
    if where.service_id is not None:
        out.append(f"{alias}.service_id = :service_id")
    return out


# What an event of the page says of its alert: the alert's summary (an acknowledge or resolve
# carries none), else the event's own.
OWN_SUMMARY = "COALESCE(e.body #>> '{payload,summary}', e.body ->> 'description')"
SUMMARY = f"COALESCE(a.summary, {OWN_SUMMARY})"
ALERTS_MATCHING = """
    SELECT a.id FROM alerts a
    WHERE a.tenant_id = :tenant_id AND (a.summary ILIKE :pattern OR a.dedup_key ILIKE :pattern)
"""
# The text filter finds the tenant's alerts whose summary or dedup key match, once: when fewer
# than this, their events are found by id through the alert's index; when more, the statement
# searches the alerts itself and walks the events in seq order, where matches come soon.
FEW_ALERTS = 2_000
# Counting stops here ("more than 100 000"): an exact count of a million rows costs a scan of
# them on every page, and nobody reads the difference. A text that many alerts match counts
# up to less: those events are found by searching every alert of the tenant again.
COUNT_CAP = 100_000
TEXT_COUNT_CAP = 10_000


@dataclass(frozen=True)
class _Search:
    """The filters as SQL: WHERE clauses over `events e` whose union is the events that pass
    them (without the cursor), with their values. Built from fixed fragments only, one
    statement per combination of filters, so each is planned for the index it can use."""

    where: HistoryFilter
    branches: tuple[str, ...]
    values: dict[str, Any]
    count_cap: int = COUNT_CAP


async def _search(db: Database, tenant_id: UUID, where: HistoryFilter) -> _Search:
    # With a service, the events are that service's (whose tenant is checked here): the count
    # then reads the service's index alone.
    tenant = (
        "e.tenant_id = :tenant_id"
        if where.service_id is None
        else "EXISTS (SELECT 1 FROM pd_services o WHERE o.id = :service_id"
        " AND o.tenant_id = :tenant_id)"
    )
    common = " AND ".join([tenant, *_conditions("e", where)])
    values: dict[str, Any] = {"tenant_id": tenant_id}
    if where.service_id is not None:
        values["service_id"] = where.service_id
    if not where.text:
        return _Search(where, (common,), values)
    values["pattern"] = _like(where.text)
    found = await db.fetch_all(
        f"{ALERTS_MATCHING} LIMIT :n",
        {"tenant_id": tenant_id, "pattern": values["pattern"], "n": FEW_ALERTS},
    )
    cap = COUNT_CAP
    if len(found) < FEW_ALERTS:
        values["alert_ids"] = [r._mapping["id"] for r in found]
        of_alerts = "e.alert_id = ANY(CAST(:alert_ids AS uuid[]))"
    else:
        of_alerts = f"e.alert_id IN ({ALERTS_MATCHING})"
        cap = TEXT_COUNT_CAP
    # Events of no alert (change events, skipped ones) through their partial index
    # (migrations/0012_delivery_history.sql).
    lone = f"e.alert_id IS NULL AND (e.dedup_key ILIKE :pattern OR {OWN_SUMMARY} ILIKE :pattern)"
    return _Search(where, (f"{common} AND {of_alerts}", f"{common} AND {lone}"), values, cap)


def _head_condition(where: HistoryFilter) -> str:
    later = " AND ".join(["n.alert_id = e.alert_id", "n.seq > e.seq", *_conditions("n", where)])
    return f"(e.alert_id IS NULL OR NOT EXISTS (SELECT 1 FROM events n WHERE {later}))"  # noqa: S608


async def _heads(
    db: Database, search: _Search, *, before: int | None, after: int | None, limit: int
) -> list[Record]:
    if after is not None:
        cursor, order = "AND e.seq > :cursor", "ASC"
    elif before is not None:
        cursor, order = "AND e.seq < :cursor", "DESC"
    else:
        cursor, order = "", "DESC"
    # Only the fixed fragments above are interpolated (S608). The tenant is named even where
    # the branch checks it through the service: the newest events first is then a walk of
    # `events_tenant` (tenant_id, seq DESC), not a sort of every event the service has.
    parts = [
        f"""(SELECT e.seq, e.id, e.alert_id FROM events e
            WHERE e.tenant_id = :tenant_id AND {branch} {cursor}
              AND {_head_condition(search.where)}
            ORDER BY e.seq {order} LIMIT :limit)"""  # noqa: S608
        for branch in search.branches
    ]
    union = " UNION ALL ".join(parts)
    sql = f"SELECT * FROM ({union}) AS h ORDER BY seq {order} LIMIT :limit"  # noqa: S608
    params = {**search.values, "limit": limit}
    if cursor:
        params["cursor"] = after if after is not None else before
    rows = await db.fetch_all(sql, params)
    return list(reversed(rows)) if after is not None else list(rows)


async def _count(db: Database, search: _Search) -> int:
    counts = " + ".join(
        f"(SELECT count(*) FROM (SELECT 1 FROM events e WHERE {branch} LIMIT :cap) AS c)"  # noqa: S608
        for branch in search.branches
    )
    value = await db.fetch_val(
        f"SELECT LEAST({counts}, :cap)",
        {**search.values, "cap": search.count_cap},
    )
    return int(value or 0)


async def count_history(db: Database, tenant_id: UUID, where: HistoryFilter) -> tuple[int, bool]:
    """The events that pass the filters, and whether that is all of them: counting stops at
    COUNT_CAP (TEXT_COUNT_CAP for a text many alerts match)."""
    search = await _search(db, tenant_id, where)
    total = await _count(db, search)
    return total, total < search.count_cap


DELIVERY_COLUMNS = f"""
    {EVENT_COLUMNS}, {SUMMARY} AS summary,
    COALESCE(e.body #>> '{{payload,severity}}', a.severity) AS severity,
    s.health AS service_health, s.health_reason AS service_health_reason,
    k.paused_until AS key_paused_until, k.pause_reason AS key_pause_reason,
    last.http_status AS last_http_status, last.error AS last_attempt_error
"""
DELIVERY_JOINS = f"""
    {EVENT_JOINS}
    LEFT JOIN alerts a ON a.id = e.alert_id
    LEFT JOIN LATERAL (
        SELECT d.http_status, d.error FROM delivery_attempts d
        WHERE d.event_id = e.id ORDER BY d.id DESC LIMIT 1
    ) AS last ON true
"""  # noqa: S608 - fixed fragments
_DELIVERY_EXTRAS = (
    "summary",
    "severity",
    "service_health",
    "service_health_reason",
    "key_paused_until",
    "key_pause_reason",
    "last_http_status",
    "last_attempt_error",
)


def _finite(value: datetime | None) -> datetime | None:
    """A key that never rested has `-infinity`, which comes back as a naive `datetime.min`."""
    return value if value is not None and value.tzinfo is not None else None


def _delivery(row: Record, matches: bool = True) -> Delivery:
    m = dict(row._mapping)
    extras = {name: m.pop(name) for name in _DELIVERY_EXTRAS}
    extras["key_paused_until"] = _finite(extras["key_paused_until"])
    for name in ("shown_rank", "alert_events"):
        m.pop(name, None)
    m["body"] = from_jsonb(m["body"])
    m["status"] = EventStatus(m["status"])
    m["notes"] = tuple(m["notes"] or ())
    m["pd_errors"] = tuple(from_jsonb(m["pd_errors"]) or ())
    return Delivery(event=Event(**m), matches=matches, **extras)


async def get_delivery(db: Database, tenant_id: UUID, event_id: UUID) -> Delivery | None:
    row = await db.fetch_one(
        f"""
        SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_JOINS}
        WHERE e.tenant_id = :tenant_id AND e.id = :id
        """,  # noqa: S608 - fixed fragments
        {"tenant_id": tenant_id, "id": event_id},
    )
    return None if row is None else _delivery(row)


def _matches(delivery: Delivery, where: HistoryFilter) -> bool:
    event = delivery.event
    if where.status is not None and event.status not in HISTORY_STATUSES[where.status]:
        return False
    return where.service_id is None or event.service_id == where.service_id


async def _groups(
    db: Database, tenant_id: UUID, heads: list[Record], where: HistoryFilter
) -> list[AlertGroup]:
    """The heads' alerts with their newest events, in the heads' order."""
    alert_ids = [h._mapping["alert_id"] for h in heads if h._mapping["alert_id"] is not None]
    lone_ids = [h._mapping["id"] for h in heads if h._mapping["alert_id"] is None]
    rows: list[Record] = []
    # Each only when it has ids: a statement over an empty list can still be planned as a scan.
    if alert_ids:
        rows += await db.fetch_all(
            f"""
            SELECT * FROM (
                SELECT {DELIVERY_COLUMNS},
                    row_number() OVER (PARTITION BY e.alert_id ORDER BY e.seq DESC) AS shown_rank,
                    count(*) OVER (PARTITION BY e.alert_id) AS alert_events
                FROM {DELIVERY_JOINS}
                WHERE e.tenant_id = :tenant_id AND e.alert_id = ANY(CAST(:alert_ids AS uuid[]))
            ) AS ranked WHERE shown_rank <= :per_alert
            """,  # noqa: S608 - fixed fragments
            {"tenant_id": tenant_id, "alert_ids": alert_ids, "per_alert": EVENTS_PER_ALERT},
        )
    if lone_ids:
        rows += await db.fetch_all(
            f"""
            SELECT {DELIVERY_COLUMNS}, 1 AS alert_events FROM {DELIVERY_JOINS}
            WHERE e.tenant_id = :tenant_id AND e.id = ANY(CAST(:lone_ids AS uuid[]))
            """,  # noqa: S608 - fixed fragments
            {"tenant_id": tenant_id, "lone_ids": lone_ids},
        )
    rows.sort(key=lambda row: int(row._mapping["seq"]))
    by_group: dict[UUID, list[Delivery]] = {}
    counts: dict[UUID, int] = {}
    for row in rows:
        delivery = _delivery(row)
        delivery = replace(delivery, matches=_matches(delivery, where))
        key = delivery.event.alert_id or delivery.event.id
        by_group.setdefault(key, []).append(delivery)
        counts[key] = int(row._mapping["alert_events"])
    groups = []
    for head in heads:
        key = head._mapping["alert_id"] or head._mapping["id"]
        shown = by_group.get(key)
        if shown:
            groups.append(
                AlertGroup(head._mapping["alert_id"], tuple(shown), counts[key] - len(shown))
            )
    return groups


async def history(
    db: Database,
    tenant_id: UUID,
    where: HistoryFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    page_size: int = 50,
) -> HistoryPage:
    """One page of the history: the newest (no cursor), the page older than `before`, or the
    page newer than `after` (`after=0`: the oldest)."""
    search = await _search(db, tenant_id, where)
    heads = await _heads(db, search, before=before, after=after, limit=page_size + 1)
    more = len(heads) > page_size
    # Fetched one past the page, on the side away from the cursor.
    heads = heads[-page_size:] if after is not None else heads[:page_size]
    newer_after: int | None = None
    older_before: int | None = None
    if heads:
        top, bottom = heads[0]._mapping["seq"], heads[-1]._mapping["seq"]
        if after is not None:
            newer_after = top if more else None
            older_before = bottom if await _any_head(db, search, before=bottom) else None
        else:
            older_before = bottom if more else None
            if before is not None and await _any_head(db, search, after=top):
                newer_after = top
    total = await _count(db, search)
    return HistoryPage(
        groups=await _groups(db, tenant_id, heads, where),
        total=total,
        total_exact=total < search.count_cap,
        newer_after=newer_after,
        older_before=older_before,
    )


async def _any_head(
    db: Database, search: _Search, *, before: int | None = None, after: int | None = None
) -> bool:
    return bool(await _heads(db, search, before=before, after=after, limit=1))


@dataclass(frozen=True)
class KeyBudget:
    """What decides when a queued event of a routing key may go: the key's sends in the
    budget window, its budget, its rest, and the key's events ahead of this one."""

    # One instant per recent send, when the slice of the budget window it was made in began:
    # the dispatcher counts each send as made then (app/dispatch/store.py), oldest first.
    sends: tuple[datetime, ...]
    limit: int
    paused_until: datetime | None
    pause_reason: str | None
    ahead: int
    # An earlier event of the same alert and key still to be sent: this one goes after it.
    blocked_by: str | None
    now: datetime


# Counting the events ahead stops here: past it, the wait is long whatever the exact number.
AHEAD_COUNTED = 10_000


async def key_budget(db: Database, event: Event) -> KeyBudget | None:
    """The state of a queued event's routing key, as the dispatcher reads it."""
    row = await db.fetch_one(
        """
        SELECT k.slice_starts, k.slice_counts, k.paused_until, k.pause_reason,
            s.rate_limit_per_minute AS rate_limit, clock_timestamp() AS now,
            (SELECT count(*) FROM (
                SELECT 1 FROM events q
                WHERE q.tenant_id = e.tenant_id AND q.routing_key_hash = e.routing_key_hash
                  AND q.status IN ('queued', 'sending') AND q.seq < e.seq
                LIMIT :counted) AS a) AS ahead,
            (SELECT b.kind FROM events b
             WHERE b.routing_key_hash = e.routing_key_hash AND b.dedup_key = e.dedup_key
               AND b.seq < e.seq AND b.status IN ('queued', 'sending', 'held')
             ORDER BY b.seq LIMIT 1) AS blocked_by
        FROM events e
        JOIN pd_services s ON s.id = e.service_id
        LEFT JOIN dispatch_keys k ON k.routing_key_hash = e.routing_key_hash
        WHERE e.id = :id
        """,
        {"id": event.id, "counted": AHEAD_COUNTED},
    )
    if row is None:
        return None
    m = row._mapping
    return KeyBudget(
        sends=tuple(
            datetime.fromtimestamp(start / 1000, UTC)
            for start, n in zip(m["slice_starts"] or (), m["slice_counts"] or (), strict=True)
            for _ in range(n)
        ),
        limit=int(m["rate_limit"]),
        paused_until=_finite(m["paused_until"]),
        pause_reason=m["pause_reason"],
        ahead=int(m["ahead"]),
        blocked_by=m["blocked_by"],
        now=m["now"],
    )
