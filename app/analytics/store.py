"""SQL of the analytics: folding finished events and changed alert lives into the hourly
rollups, reading them back over a window, the tenant's targets and the breaches found.

Everything folded is attributed to the hour its event was accepted (`events.created_at`) or its
alert opened (`alerts.opened_at`), however much later it finished: a window's figures are
those of the alerts and events that arrived in it. Each fold adds what finished (events) or
happened (an alert's open, acknowledge, resolve) in (`lo`, `hi`], so a row is counted once
whatever the number of folds, and the watermark moves to `hi` in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from databases import Database

from app.analytics.windows import PAGE_BOUNDS

# Statuses an event can end in (app/outbox/states.py, plus `suppressed` for alerts accepted and
# not sent on purpose). Pending events are not folded: they are counted once they finish.
_FINISHED = "e.finished_at > :lo AND e.finished_at <= :hi AND e.status NOT IN " \
    "('queued', 'sending', 'held')"  # fmt: skip

FOLD_EVENTS = f"""
INSERT INTO analytics_hours AS h (tenant_id, service_id, hour, alerts, suppressed, delivered,
    failed, cancelled)
SELECT e.tenant_id, e.service_id, date_trunc('hour', e.created_at, 'UTC'),
    count(*) FILTER (WHERE e.kind = 'trigger'),
    count(*) FILTER (WHERE e.status IN ('suppressed', 'skipped')),
    count(*) FILTER (WHERE e.status = 'delivered'),
    count(*) FILTER (WHERE e.status = 'failed'),
    count(*) FILTER (WHERE e.status = 'cancelled')
FROM events e
WHERE {_FINISHED}
GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, service_id, hour) DO UPDATE SET
    alerts = h.alerts + EXCLUDED.alerts,
    suppressed = h.suppressed + EXCLUDED.suppressed,
    delivered = h.delivered + EXCLUDED.delivered,
    failed = h.failed + EXCLUDED.failed,
    cancelled = h.cancelled + EXCLUDED.cancelled
"""

# Acceptance to PagerDuty's 2xx: the delivered attempt's end (one per delivered event).
FOLD_TIME_TO_PAGE = f"""
INSERT INTO analytics_page_buckets AS b (tenant_id, service_id, hour, bucket, events)
SELECT e.tenant_id, e.service_id, date_trunc('hour', e.created_at, 'UTC'),
    width_bucket(extract(epoch FROM a.finished_at - e.created_at),
        CAST(:bounds AS double precision[])),
    count(*)
FROM events e
JOIN LATERAL (
    SELECT finished_at FROM delivery_attempts
    WHERE event_id = e.id AND outcome = 'delivered' AND finished_at IS NOT NULL
    ORDER BY id DESC LIMIT 1
) a ON true
WHERE {_FINISHED} AND e.status = 'delivered' AND e.kind = 'trigger'
GROUP BY 1, 2, 3, 4
ON CONFLICT (tenant_id, service_id, hour, bucket) DO UPDATE SET events = b.events + EXCLUDED.events
"""

SOURCE_MAX_LENGTH = 100
FOLD_SOURCES = f"""
INSERT INTO analytics_sources AS s (tenant_id, hour, source, alerts)
SELECT e.tenant_id, date_trunc('hour', e.created_at, 'UTC'),
    left(COALESCE(NULLIF(e.body -> 'payload' ->> 'source', ''), NULLIF(e.body ->> 'client', ''),
        ''), {SOURCE_MAX_LENGTH}),
    count(*)
FROM events e
WHERE {_FINISHED} AND e.kind = 'trigger'
GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, hour, source) DO UPDATE SET alerts = s.alerts + EXCLUDED.alerts
"""

# Alert lives changed since `lo`: whatever sets an open, acknowledged or resolved time also sets
# last_event_at to the same moment or later, so every such time in (lo, hi] is among them. A
# life counts once per service it went to (each opens an incident there); one with no service
# (not sent) opens none.
FOLD_ALERTS = """
WITH changed AS (
    SELECT a.tenant_id, s.service_id, a.opened_at, a.acknowledged_at, a.resolved_at,
        a.opened_at > :lo AND a.opened_at <= :hi AS opened,
        a.acknowledged_at > :lo AND a.acknowledged_at <= :hi AS acknowledged,
        a.resolved_at > :lo AND a.resolved_at <= :hi AS resolved
    FROM alerts a
    CROSS JOIN LATERAL unnest(a.service_ids) AS s(service_id)
    WHERE a.last_event_at > :lo
)
INSERT INTO analytics_hours AS h (tenant_id, service_id, hour, incidents, acknowledged,
    ack_seconds, resolved, resolve_seconds, resolved_unacknowledged)
SELECT tenant_id, service_id, date_trunc('hour', opened_at, 'UTC'),
    count(*) FILTER (WHERE opened),
    count(*) FILTER (WHERE acknowledged),
    COALESCE(sum(extract(epoch FROM acknowledged_at - opened_at)) FILTER (WHERE acknowledged),
        0),
    count(*) FILTER (WHERE resolved),
    COALESCE(sum(extract(epoch FROM resolved_at - opened_at)) FILTER (WHERE resolved), 0),
    count(*) FILTER (WHERE resolved AND acknowledged_at IS NULL)
FROM changed
WHERE opened OR acknowledged OR resolved
GROUP BY 1, 2, 3
ON CONFLICT (tenant_id, service_id, hour) DO UPDATE SET
    incidents = h.incidents + EXCLUDED.incidents,
    acknowledged = h.acknowledged + EXCLUDED.acknowledged,
    ack_seconds = h.ack_seconds + EXCLUDED.ack_seconds,
    resolved = h.resolved + EXCLUDED.resolved,
    resolve_seconds = h.resolve_seconds + EXCLUDED.resolve_seconds,
    resolved_unacknowledged = h.resolved_unacknowledged + EXCLUDED.resolved_unacknowledged
"""

# A target is missed when what it asks for (an acknowledge, which a resolve also ends, or the
# resolve) came later than the alert's open plus the target, or has still not come by `hi`.
# Looked for among open lives (still waiting) and lives changed since `lo` (just done); a
# breach found while waiting gets its time once the alert is acknowledged or resolved.
FIND_BREACHES = """
INSERT INTO analytics_breaches AS b (tenant_id, alert_id, target, dedup_key, summary, severity,
    service_ids, opened_at, target_seconds, took_seconds)
SELECT a.tenant_id, a.id, t.target, a.dedup_key, a.summary, a.severity, a.service_ids,
    a.opened_at, t.seconds,
    CASE WHEN t.done_at <= :hi THEN extract(epoch FROM t.done_at - a.opened_at) END
FROM alerts a
JOIN analytics_targets g ON g.tenant_id = a.tenant_id AND g.severity = a.severity
CROSS JOIN LATERAL (VALUES
    ('acknowledge', g.acknowledge_seconds, COALESCE(a.acknowledged_at, a.resolved_at)),
    ('resolve', g.resolve_seconds, a.resolved_at)
) AS t(target, seconds, done_at)
WHERE a.id = ANY(ARRAY(
        SELECT id FROM alerts WHERE state <> 'resolved'
        UNION SELECT id FROM alerts WHERE last_event_at > :lo))
    AND cardinality(a.service_ids) > 0
    AND a.opened_at <= :hi
    AND t.seconds IS NOT NULL
    AND LEAST(COALESCE(t.done_at, :hi), :hi) > a.opened_at + make_interval(secs => t.seconds)
ON CONFLICT (alert_id, target) DO UPDATE SET took_seconds = EXCLUDED.took_seconds
    WHERE b.took_seconds IS NULL AND EXCLUDED.took_seconds IS NOT NULL
"""

FOLD_STATEMENTS = (FOLD_EVENTS, FOLD_TIME_TO_PAGE, FOLD_SOURCES, FOLD_ALERTS, FIND_BREACHES)


# The watermark starts at -infinity (nothing folded: retention waits for the first fold); read
# as the epoch, a time Python can hold, before any event.
_WATERMARK = "GREATEST(folded_to, CAST('epoch' AS timestamptz))"


async def lock_watermark(db: Database) -> datetime:
    """The watermark, locked until the transaction ends: one fold at a time, everywhere."""
    value = await db.fetch_val(
        f"SELECT {_WATERMARK} FROM analytics_watermark WHERE id = 1 FOR UPDATE"
    )
    assert isinstance(value, datetime)
    return value


async def folded_to(db: Database) -> datetime:
    value = await db.fetch_val(f"SELECT {_WATERMARK} FROM analytics_watermark WHERE id = 1")
    assert isinstance(value, datetime)
    return value


async def earliest_unfolded(db: Database, lo: datetime) -> datetime | None:
    """Where a fold's range can start: the first event finished or alert changed after `lo`
    (both through their indexes), so a first fold or a long pause starts at the data."""
    value = await db.fetch_val(
        """
        SELECT LEAST(
            (SELECT min(finished_at) FROM events WHERE finished_at > :lo),
            (SELECT min(last_event_at) FROM alerts WHERE last_event_at > :lo))
        """,
        {"lo": lo},
    )
    return value if isinstance(value, datetime) else None


async def fold_range(db: Database, lo: datetime, hi: datetime) -> None:
    for sql in FOLD_STATEMENTS:
        params: dict[str, Any] = {"lo": lo, "hi": hi}
        if sql is FOLD_TIME_TO_PAGE:
            params["bounds"] = list(PAGE_BOUNDS)
        await db.execute(sql, params)
    await db.execute("UPDATE analytics_watermark SET folded_to = :hi WHERE id = 1", {"hi": hi})


async def database_now(db: Database) -> datetime:
    value = await db.fetch_val("SELECT now()")
    assert isinstance(value, datetime)
    return value


# Reading back.

HOUR_COLUMNS = (
    "alerts",
    "incidents",
    "suppressed",
    "delivered",
    "failed",
    "cancelled",
    "acknowledged",
    "ack_seconds",
    "resolved",
    "resolve_seconds",
    "resolved_unacknowledged",
)
_SUMS = ", ".join(f"sum({c}) AS {c}" for c in HOUR_COLUMNS)


@dataclass(frozen=True)
class Sums:
    """The rollups' counts summed over a window (and one service, or the tenant)."""

    alerts: int = 0
    incidents: int = 0
    suppressed: int = 0
    delivered: int = 0
    failed: int = 0
    cancelled: int = 0
    acknowledged: int = 0
    ack_seconds: float = 0.0
    resolved: int = 0
    resolve_seconds: float = 0.0
    resolved_unacknowledged: int = 0


def _sums(mapping: Any) -> Sums:
    def count(name: str) -> int:
        return int(mapping[name] or 0)

    return Sums(
        alerts=count("alerts"),
        incidents=count("incidents"),
        suppressed=count("suppressed"),
        delivered=count("delivered"),
        failed=count("failed"),
        cancelled=count("cancelled"),
        acknowledged=count("acknowledged"),
        ack_seconds=float(mapping["ack_seconds"] or 0),
        resolved=count("resolved"),
        resolve_seconds=float(mapping["resolve_seconds"] or 0),
        resolved_unacknowledged=count("resolved_unacknowledged"),
    )


async def sums_by_service(
    db: Database, tenant_id: UUID, start: datetime
) -> dict[UUID | None, Sums]:
    rows = await db.fetch_all(
        f"""
        SELECT service_id, {_SUMS} FROM analytics_hours
        WHERE tenant_id = :tenant_id AND hour >= :start
        GROUP BY service_id
        """,
        {"tenant_id": tenant_id, "start": start},
    )
    return {r._mapping["service_id"]: _sums(r._mapping) for r in rows}


@dataclass(frozen=True)
class Bar:
    at: datetime
    alerts: int
    incidents: int
    suppressed: int


async def series(db: Database, tenant_id: UUID, start: datetime, unit: str) -> list[Bar]:
    """Alerts, incidents and suppressed per hour or day (UTC) since `start`, gaps left out."""
    rows = await db.fetch_all(
        """
        SELECT date_trunc(:unit, hour, 'UTC') AS at, sum(alerts) AS alerts,
            sum(incidents) AS incidents, sum(suppressed) AS suppressed
        FROM analytics_hours
        WHERE tenant_id = :tenant_id AND hour >= :start
        GROUP BY 1 ORDER BY 1
        """,
        {"tenant_id": tenant_id, "start": start, "unit": unit},
    )
    return [
        Bar(
            at=r._mapping["at"],
            alerts=int(r._mapping["alerts"]),
            incidents=int(r._mapping["incidents"]),
            suppressed=int(r._mapping["suppressed"]),
        )
        for r in rows
    ]


async def page_buckets(
    db: Database, tenant_id: UUID, start: datetime
) -> dict[UUID | None, dict[int, int]]:
    rows = await db.fetch_all(
        """
        SELECT service_id, bucket, sum(events) AS events FROM analytics_page_buckets
        WHERE tenant_id = :tenant_id AND hour >= :start
        GROUP BY service_id, bucket
        """,
        {"tenant_id": tenant_id, "start": start},
    )
    found: dict[UUID | None, dict[int, int]] = {}
    for r in rows:
        found.setdefault(r._mapping["service_id"], {})[int(r._mapping["bucket"])] = int(
            r._mapping["events"]
        )
    return found


async def busiest_sources(
    db: Database, tenant_id: UUID, start: datetime, limit: int
) -> list[tuple[str, int]]:
    rows = await db.fetch_all(
        """
        SELECT source, sum(alerts) AS alerts FROM analytics_sources
        WHERE tenant_id = :tenant_id AND hour >= :start
        GROUP BY source ORDER BY sum(alerts) DESC, source LIMIT :limit
        """,
        {"tenant_id": tenant_id, "start": start, "limit": limit},
    )
    return [(r._mapping["source"], int(r._mapping["alerts"])) for r in rows]


async def service_names(db: Database, tenant_id: UUID) -> dict[UUID, str]:
    """The tenant's services by id (pd_services is written by the installations)."""
    rows = await db.fetch_all(
        "SELECT id, name FROM pd_services WHERE tenant_id = :tenant_id ORDER BY name",
        {"tenant_id": tenant_id},
    )
    return {r._mapping["id"]: r._mapping["name"] for r in rows}


# Targets and breaches.

SEVERITIES = ("critical", "error", "warning", "info")


@dataclass(frozen=True)
class Target:
    severity: str
    acknowledge_seconds: int | None
    resolve_seconds: int | None


async def targets(db: Database, tenant_id: UUID) -> dict[str, Target]:
    rows = await db.fetch_all(
        """
        SELECT severity, acknowledge_seconds, resolve_seconds FROM analytics_targets
        WHERE tenant_id = :tenant_id
        """,
        {"tenant_id": tenant_id},
    )
    return {r._mapping["severity"]: Target(**dict(r._mapping)) for r in rows}


async def replace_targets(db: Database, tenant_id: UUID, new: Sequence[Target]) -> None:
    """The tenant's whole set of targets, in one transaction (a severity left out has none)."""
    async with db.transaction():
        await db.execute(
            "DELETE FROM analytics_targets WHERE tenant_id = :tenant_id", {"tenant_id": tenant_id}
        )
        for target in new:
            if target.acknowledge_seconds is None and target.resolve_seconds is None:
                continue
            await db.execute(
                """
                INSERT INTO analytics_targets (tenant_id, severity, acknowledge_seconds,
                    resolve_seconds)
                VALUES (:tenant_id, :severity, :acknowledge_seconds, :resolve_seconds)
                """,
                {
                    "tenant_id": tenant_id,
                    "severity": target.severity,
                    "acknowledge_seconds": target.acknowledge_seconds,
                    "resolve_seconds": target.resolve_seconds,
                },
            )


@dataclass(frozen=True)
class Breach:
    id: int
    tenant_id: UUID
    alert_id: UUID
    target: str
    dedup_key: str
    summary: str | None
    severity: str
    service_ids: tuple[UUID, ...]
    opened_at: datetime
    target_seconds: int
    took_seconds: float | None
    found_at: datetime


BREACH_COLUMNS = (
    "id, tenant_id, alert_id, target, dedup_key, summary, severity, service_ids, opened_at, "
    "target_seconds, took_seconds, found_at"
)


def _breach(mapping: Any) -> Breach:
    values = dict(mapping)
    values["service_ids"] = tuple(values["service_ids"])
    return Breach(**values)


async def breaches_since(
    db: Database, tenant_id: UUID, start: datetime, limit: int
) -> tuple[dict[str, int], list[Breach]]:
    """Breaches of alerts opened since `start`: the count per target, and the newest few."""
    counts = await db.fetch_all(
        """
        SELECT target, count(*) AS n FROM analytics_breaches
        WHERE tenant_id = :tenant_id AND opened_at >= :start GROUP BY target
        """,
        {"tenant_id": tenant_id, "start": start},
    )
    rows = await db.fetch_all(
        f"""
        SELECT {BREACH_COLUMNS} FROM analytics_breaches
        WHERE tenant_id = :tenant_id AND opened_at >= :start
        ORDER BY opened_at DESC, id DESC LIMIT :limit
        """,
        {"tenant_id": tenant_id, "start": start, "limit": limit},
    )
    return (
        {r._mapping["target"]: int(r._mapping["n"]) for r in counts},
        [_breach(r._mapping) for r in rows],
    )


async def new_breaches(db: Database, limit: int = 100) -> list[Breach]:
    """Breaches no one has been told of yet, oldest first, for the vendor callback to send;
    `mark_notified` once they are sent."""
    rows = await db.fetch_all(
        f"""
        SELECT {BREACH_COLUMNS} FROM analytics_breaches
        WHERE notified_at IS NULL ORDER BY id LIMIT :limit
        """,
        {"limit": limit},
    )
    return [_breach(r._mapping) for r in rows]


async def mark_notified(db: Database, ids: Sequence[int]) -> None:
    await db.execute(
        "UPDATE analytics_breaches SET notified_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))",
        {"ids": list(ids)},
    )
