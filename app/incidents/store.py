"""SQL of reconciliation: which open alerts are due a look, and where their incidents are
(the OAuth-connected services they went to); and the PagerDuty user an installation acts as."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from databases import Database


@dataclass(frozen=True)
class DueAlert:
    id: UUID
    tenant_id: UUID
    dedup_key: str
    service_ids: tuple[UUID, ...]
    opened_at: datetime
    # The database's time of the claim, and the stamp it replaced (put back when the look
    # could not happen, so the alert stays due).
    claimed_at: datetime
    previous: datetime | None


@dataclass(frozen=True)
class Target:
    """A service an alert went to, reachable through an OAuth connection's REST API."""

    service_id: UUID
    pd_service_id: str
    installation_id: UUID
    tenant_id: UUID


@dataclass(frozen=True)
class ActingUser:
    pd_user_id: str
    name: str
    email: str


async def claim_due(db: Database, *, after: timedelta, batch: int) -> list[DueAlert]:
    """Open alerts whose events and last look are both older than `after`, oldest first,
    stamped as looked at now in the same statement: any number of workers share them."""
    rows = await db.fetch_all(
        """
        WITH due AS (
            SELECT id, reconciled_at FROM alerts
            WHERE state <> 'resolved'
              AND GREATEST(last_event_at, reconciled_at) <= now() - CAST(:after AS interval)
            ORDER BY GREATEST(last_event_at, reconciled_at)
            LIMIT :batch FOR UPDATE SKIP LOCKED
        )
        UPDATE alerts a SET reconciled_at = now() FROM due WHERE a.id = due.id
        RETURNING a.id, a.tenant_id, a.dedup_key, a.service_ids, a.opened_at,
            now() AS claimed_at, due.reconciled_at AS previous
        """,
        {"after": after, "batch": batch},
    )
    return [
        DueAlert(**{**dict(r._mapping), "service_ids": tuple(r._mapping["service_ids"])})
        for r in rows
    ]


async def put_back(db: Database, alerts: Sequence[DueAlert]) -> None:
    """Undo the claim's stamp: the look did not happen (PagerDuty asked us to wait)."""
    if not alerts:
        return
    await db.execute(
        """
        UPDATE alerts SET reconciled_at = b.previous
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS b(id uuid, previous timestamptz)
        WHERE alerts.id = b.id
        """,
        {
            "rows": json.dumps(
                [
                    {"id": str(a.id), "previous": None if a.previous is None else str(a.previous)}
                    for a in alerts
                ]
            )
        },
    )


async def settle(db: Database, alert_ids: Sequence[UUID]) -> None:
    """PagerDuty's incidents of these alerts are resolved: no more looks until a new trigger
    (which clears the stamp). One that a trigger reached meanwhile is left due."""
    if not alert_ids:
        return
    await db.execute(
        """
        UPDATE alerts SET reconciled_at = 'infinity'
        WHERE id = ANY(CAST(:ids AS uuid[])) AND reconciled_at IS NOT NULL
        """,
        {"ids": list(alert_ids)},
    )


async def targets(db: Database, service_ids: Sequence[UUID]) -> dict[UUID, Target]:
    rows = await db.fetch_all(
        """
        SELECT s.id AS service_id, s.pd_service_id, s.installation_id, s.tenant_id
        FROM pd_services s JOIN installations i ON i.id = s.installation_id
        WHERE s.id = ANY(CAST(:ids AS uuid[])) AND s.pd_service_id IS NOT NULL
          AND i.method = 'oauth' AND i.status = 'active'
        """,
        {"ids": list(dict.fromkeys(service_ids))},
    )
    return {r._mapping["service_id"]: Target(**dict(r._mapping)) for r in rows}


async def acting_user(db: Database, installation_id: UUID) -> ActingUser | None:
    """The user GET /users/me named, if it is still the one who connected the account."""
    row = await db.fetch_one(
        """
        SELECT u.pd_user_id, u.name, u.email FROM installation_users u
        JOIN installations i ON i.id = u.installation_id
        WHERE u.installation_id = :id AND u.pd_user_id = i.pd_user_id
        """,
        {"id": installation_id},
    )
    return None if row is None else ActingUser(**dict(row._mapping))


async def user_names(db: Database, tenant_id: UUID) -> dict[str, str]:
    """The names of the PagerDuty users who connected the tenant's accounts, by their id."""
    rows = await db.fetch_all(
        """
        SELECT u.pd_user_id, u.name FROM installation_users u
        JOIN installations i ON i.id = u.installation_id
        WHERE i.tenant_id = :tenant_id
        """,
        {"tenant_id": tenant_id},
    )
    return {r._mapping["pd_user_id"]: r._mapping["name"] for r in rows}


async def keep_acting_user(db: Database, installation_id: UUID, user: ActingUser) -> None:
    await db.execute(
        """
        INSERT INTO installation_users (installation_id, pd_user_id, name, email)
        VALUES (:id, :pd_user_id, :name, :email)
        ON CONFLICT (installation_id) DO UPDATE SET pd_user_id = EXCLUDED.pd_user_id,
            name = EXCLUDED.name, email = EXCLUDED.email, learned_at = now()
        """,
        {
            "id": installation_id,
            "pd_user_id": user.pd_user_id,
            "name": user.name,
            "email": user.email,
        },
    )


async def alert_services(db: Database, tenant_id: UUID, alert_id: UUID) -> list[UUID]:
    value = await db.fetch_val(
        "SELECT service_ids FROM alerts WHERE id = :id AND tenant_id = :tenant_id",
        {"id": alert_id, "tenant_id": tenant_id},
    )
    return list(value or ())
