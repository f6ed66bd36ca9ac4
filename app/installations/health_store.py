"""SQL of the connection health check: the last report per account, and what it measures in
pdconnect's own tables (webhook deliveries received, delivery attempts of the last day)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from databases import Database


@dataclass(frozen=True)
class StoredReport:
    installation_id: UUID
    checked_at: datetime
    trigger: str
    status: str
    lines: list[dict[str, Any]]
    not_checked: str | None
    keys_probed_at: datetime | None


async def save_report(
    db: Database,
    *,
    installation_id: UUID,
    tenant_id: UUID,
    checked_at: datetime,
    trigger: str,
    status: str,
    lines: list[dict[str, Any]],
    not_checked: str | None,
    keys_probed_at: datetime | None,
) -> None:
    await db.execute(
        """
        INSERT INTO health_reports (installation_id, tenant_id, checked_at, trigger, status,
            lines, not_checked, keys_probed_at)
        VALUES (:installation_id, :tenant_id, :checked_at, :trigger, :status,
            CAST(:lines AS jsonb), :not_checked, :keys_probed_at)
        ON CONFLICT (installation_id) DO UPDATE SET checked_at = EXCLUDED.checked_at,
            trigger = EXCLUDED.trigger, status = EXCLUDED.status, lines = EXCLUDED.lines,
            not_checked = EXCLUDED.not_checked, keys_probed_at = EXCLUDED.keys_probed_at
        """,
        {
            "installation_id": installation_id,
            "tenant_id": tenant_id,
            "checked_at": checked_at,
            "trigger": trigger,
            "status": status,
            "lines": json.dumps(lines),
            "not_checked": not_checked,
            "keys_probed_at": keys_probed_at,
        },
    )


def _report(mapping: Any) -> StoredReport:
    values = dict(mapping)
    raw = values["lines"]
    values["lines"] = json.loads(raw) if isinstance(raw, str) else raw
    return StoredReport(**values)


async def last_report(db: Database, installation_id: UUID) -> StoredReport | None:
    row = await db.fetch_one(
        """
        SELECT installation_id, checked_at, trigger, status, lines, not_checked, keys_probed_at
        FROM health_reports WHERE installation_id = :id
        """,
        {"id": installation_id},
    )
    return None if row is None else _report(row._mapping)


async def reports_of(db: Database, tenant_id: UUID) -> dict[UUID, StoredReport]:
    rows = await db.fetch_all(
        """
        SELECT installation_id, checked_at, trigger, status, lines, not_checked, keys_probed_at
        FROM health_reports WHERE tenant_id = :tenant_id
        """,
        {"tenant_id": tenant_id},
    )
    return {r._mapping["installation_id"]: _report(r._mapping) for r in rows}


async def routing_key_of(db: Database, service_id: UUID) -> str | None:
    """The service's encrypted routing key."""
    value = await db.fetch_val(
        "SELECT routing_key_enc FROM pd_services WHERE id = :id", {"id": service_id}
    )
    return value if isinstance(value, str) else None


async def last_webhook_delivery(db: Database, subscription_id: UUID) -> datetime | None:
    """When PagerDuty last delivered to this subscription (the ids are kept a week)."""
    value = await db.fetch_val(
        "SELECT max(received_at) FROM webhook_deliveries WHERE subscription_id = :id",
        {"id": subscription_id},
    )
    return value if isinstance(value, datetime) else None


@dataclass(frozen=True)
class AttemptCounts:
    total: int
    failed: int
    rate_limited: int


async def attempts_last_day(db: Database, service_ids: list[UUID]) -> AttemptCounts:
    """Finished delivery attempts to these services' current routing keys over the last 24
    hours (by the database's clock, which stamps them; through the index the rate budget
    uses): all, failed (refused, key refused, 5xx or no answer, given up),
    and rate limited (PagerDuty's 429: a wait, not an error)."""
    if not service_ids:
        return AttemptCounts(0, 0, 0)
    row = await db.fetch_one(
        """
        SELECT count(*) AS total,
            count(*) FILTER (WHERE a.outcome IN ('rejected', 'key_rejected', 'retry',
                'abandoned')) AS failed,
            count(*) FILTER (WHERE a.outcome = 'rate_limited') AS rate_limited
        FROM delivery_attempts a
        WHERE a.routing_key_hash IN (
                SELECT routing_key_hash FROM pd_services WHERE id = ANY(CAST(:ids AS uuid[])))
          AND a.started_at > now() - interval '24 hours' AND a.outcome IS NOT NULL
        """,
        {"ids": service_ids},
    )
    assert row is not None
    m = row._mapping
    return AttemptCounts(int(m["total"]), int(m["failed"]), int(m["rate_limited"]))
