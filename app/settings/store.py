"""SQL the settings screens read and no domain needs: each service's last delivery and last
error, for the connection overview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from databases import Database

# The overview looks at the tenant's latest events only: its cost stays the same however long
# the history, and a service with nothing among them says "none recently".
RECENT_EVENTS = 2000


@dataclass(frozen=True)
class ServiceActivity:
    last_delivered_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


async def service_activity(db: Database, tenant_id: UUID) -> dict[UUID, ServiceActivity]:
    rows = await db.fetch_all(
        """
        WITH recent AS (
            SELECT service_id, status, last_error, created_at, finished_at, seq
            FROM events WHERE tenant_id = :tenant_id
            ORDER BY seq DESC LIMIT CAST(:recent AS int)
        )
        SELECT service_id,
            max(finished_at) FILTER (WHERE status = 'delivered') AS last_delivered_at,
            (array_agg(last_error ORDER BY seq DESC)
                FILTER (WHERE status IN ('failed', 'held') AND last_error IS NOT NULL))[1]
                AS last_error,
            max(COALESCE(finished_at, created_at))
                FILTER (WHERE status IN ('failed', 'held') AND last_error IS NOT NULL)
                AS last_error_at
        FROM recent WHERE service_id IS NOT NULL GROUP BY service_id
        """,
        {"tenant_id": tenant_id, "recent": RECENT_EVENTS},
    )
    return {
        row._mapping["service_id"]: ServiceActivity(
            last_delivered_at=row._mapping["last_delivered_at"],
            last_error=row._mapping["last_error"],
            last_error_at=row._mapping["last_error_at"],
        )
        for row in rows
    }


async def ingest_key_names(db: Database, tenant_id: UUID) -> dict[UUID, str]:
    """The names given to the tenant's ingest keys when they were created on the settings
    page. The name is kept in the audit entry of the key's creation (keys made by the admin
    API or the command line have none), so the key table and the ingest path are unchanged."""
    rows = await db.fetch_all(
        """
        SELECT detail->>'key_id' AS key_id, detail->>'name' AS name FROM audit_log
        WHERE tenant_id = :tenant_id AND action = 'ingest_key.created'
          AND detail->>'name' IS NOT NULL
        """,
        {"tenant_id": tenant_id},
    )
    return {UUID(row._mapping["key_id"]): row._mapping["name"] for row in rows}
