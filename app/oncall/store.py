"""SQL for the on-call snapshots: one row per OAuth account someone asked about, with the last
good read from PagerDuty, the last error, and when it is due again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from databases import Database
from databases.interfaces import Record

SNAPSHOT_COLUMNS = (
    "installation_id, tenant_id, data, fetched_at, error, error_at, read_at, next_refresh_at, "
    "refreshing_until"
)


@dataclass(frozen=True)
class Snapshot:
    installation_id: UUID
    tenant_id: UUID
    data: dict[str, Any] | None
    fetched_at: datetime | None
    error: str | None
    error_at: datetime | None
    read_at: datetime
    next_refresh_at: datetime
    refreshing_until: datetime


def _snapshot(row: Record) -> Snapshot:
    values = dict(row._mapping)
    raw = values["data"]
    # jsonb comes back as text through `databases`.
    values["data"] = json.loads(raw) if isinstance(raw, str) else raw
    return Snapshot(**values)


async def note_read(
    db: Database, *, installation_id: UUID, tenant_id: UUID, now: datetime
) -> Snapshot:
    """The account's snapshot, created empty (due at once) on its first read; every read keeps
    it refreshed in the background for a while."""
    row = await db.fetch_one(
        f"""
        INSERT INTO oncall_snapshots (installation_id, tenant_id, read_at)
        VALUES (:installation_id, :tenant_id, :now)
        ON CONFLICT (installation_id) DO UPDATE SET read_at = EXCLUDED.read_at
        RETURNING {SNAPSHOT_COLUMNS}
        """,
        {"installation_id": installation_id, "tenant_id": tenant_id, "now": now},
    )
    assert row is not None
    return _snapshot(row)


async def get_snapshot(db: Database, installation_id: UUID) -> Snapshot | None:
    row = await db.fetch_one(
        f"SELECT {SNAPSHOT_COLUMNS} FROM oncall_snapshots WHERE installation_id = :id",
        {"id": installation_id},
    )
    return None if row is None else _snapshot(row)


async def claim(db: Database, installation_id: UUID, *, now: datetime, lease: timedelta) -> bool:
    """Take the account's refresh for `lease`, unless another process holds it."""
    value = await db.fetch_val(
        """
        UPDATE oncall_snapshots SET refreshing_until = :until
        WHERE installation_id = :id AND refreshing_until <= :now
        RETURNING 1
        """,
        {"id": installation_id, "now": now, "until": now + lease},
    )
    return value is not None


async def claim_due(
    db: Database, *, now: datetime, lease: timedelta, read_since: datetime, batch: int
) -> list[tuple[UUID, UUID]]:
    """(installation id, tenant id) of accounts due for a refresh and read lately, taken for
    `lease`; any number of processes share them (SKIP LOCKED)."""
    rows = await db.fetch_all(
        """
        UPDATE oncall_snapshots SET refreshing_until = :until
        WHERE installation_id IN (
            SELECT installation_id FROM oncall_snapshots
            WHERE next_refresh_at <= :now AND refreshing_until <= :now AND read_at >= :since
            ORDER BY next_refresh_at LIMIT :batch FOR UPDATE SKIP LOCKED)
        RETURNING installation_id, tenant_id
        """,
        {"now": now, "until": now + lease, "since": read_since, "batch": batch},
    )
    return [(r._mapping["installation_id"], r._mapping["tenant_id"]) for r in rows]


async def save_data(
    db: Database,
    installation_id: UUID,
    *,
    data: dict[str, Any],
    fetched_at: datetime,
    next_refresh_at: datetime,
) -> None:
    await db.execute(
        """
        UPDATE oncall_snapshots SET data = CAST(:data AS jsonb), fetched_at = :fetched_at,
            error = NULL, error_at = NULL, next_refresh_at = :next,
            refreshing_until = 'epoch'
        WHERE installation_id = :id
        """,
        {
            "id": installation_id,
            "data": json.dumps(data),
            "fetched_at": fetched_at,
            "next": next_refresh_at,
        },
    )


async def save_error(
    db: Database, installation_id: UUID, *, error: str, at: datetime, next_refresh_at: datetime
) -> None:
    """The last good read stays: readers see it, with the error."""
    await db.execute(
        """
        UPDATE oncall_snapshots SET error = :error, error_at = :at, next_refresh_at = :next,
            refreshing_until = 'epoch'
        WHERE installation_id = :id
        """,
        {"id": installation_id, "error": error, "at": at, "next": next_refresh_at},
    )
