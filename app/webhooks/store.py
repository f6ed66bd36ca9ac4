"""SQL for webhook subscriptions, seen deliveries and incident states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from databases import Database


@dataclass(frozen=True)
class Subscription:
    id: UUID
    tenant_id: UUID
    installation_id: UUID
    pd_service_id: str
    pd_subscription_id: str
    secret_enc: str


SUBSCRIPTION_COLUMNS = (
    "id, tenant_id, installation_id, pd_service_id, pd_subscription_id, secret_enc"
)


async def insert_subscription(
    db: Database,
    *,
    subscription_id: UUID,
    tenant_id: UUID,
    installation_id: UUID,
    pd_service_id: str,
    pd_subscription_id: str,
    secret_enc: str,
) -> None:
    await db.execute(
        """
        INSERT INTO webhook_subscriptions (id, tenant_id, installation_id, pd_service_id,
            pd_subscription_id, secret_enc)
        VALUES (:id, :tenant_id, :installation_id, :pd_service_id, :pd_subscription_id,
            :secret_enc)
        ON CONFLICT (installation_id, pd_service_id) DO UPDATE SET
            pd_subscription_id = EXCLUDED.pd_subscription_id,
            secret_enc = EXCLUDED.secret_enc
        """,
        {
            "id": subscription_id,
            "tenant_id": tenant_id,
            "installation_id": installation_id,
            "pd_service_id": pd_service_id,
            "pd_subscription_id": pd_subscription_id,
            "secret_enc": secret_enc,
        },
    )


async def get_subscription(db: Database, subscription_id: UUID) -> Subscription | None:
    row = await db.fetch_one(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = :id",
        {"id": subscription_id},
    )
    return None if row is None else Subscription(**dict(row._mapping))


async def subscriptions_of(db: Database, installation_id: UUID) -> list[Subscription]:
    rows = await db.fetch_all(
        f"""
        SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions
        WHERE installation_id = :id ORDER BY created_at
        """,
        {"id": installation_id},
    )
    return [Subscription(**dict(r._mapping)) for r in rows]


async def has_subscription(db: Database, installation_id: UUID, pd_service_id: str) -> bool:
    value = await db.fetch_val(
        """
        SELECT 1 FROM webhook_subscriptions
        WHERE installation_id = :id AND pd_service_id = :pd_service_id
        """,
        {"id": installation_id, "pd_service_id": pd_service_id},
    )
    return value is not None


async def first_delivery(
    db: Database, *, webhook_id: str, subscription_id: UUID, event_type: str
) -> bool:
    """Record a delivery id; False when it was seen before (PagerDuty delivers at least once)."""
    value = await db.fetch_val(
        """
        INSERT INTO webhook_deliveries (webhook_id, subscription_id, event_type)
        VALUES (:webhook_id, :subscription_id, :event_type)
        ON CONFLICT (webhook_id) DO NOTHING RETURNING 1
        """,
        {"webhook_id": webhook_id, "subscription_id": subscription_id, "event_type": event_type},
    )
    return value is not None


async def service_of(db: Database, installation_id: UUID, pd_service_id: str) -> UUID | None:
    value = await db.fetch_val(
        """
        SELECT id FROM pd_services
        WHERE installation_id = :installation_id AND pd_service_id = :pd_service_id
        """,
        {"installation_id": installation_id, "pd_service_id": pd_service_id},
    )
    return value if isinstance(value, UUID) else None


async def record_incident(
    db: Database,
    *,
    tenant_id: UUID,
    service_id: UUID,
    dedup_key: str,
    incident_id: str,
    incident_number: int | None,
    status: str,
    title: str | None,
    html_url: str | None,
    changed_by: str | None,
    changed_at: datetime,
) -> None:
    """Keep the newest state: deliveries can arrive out of order (retries), so an older one
    never overwrites a newer one."""
    await db.execute(
        """
        INSERT INTO incident_states (service_id, dedup_key, tenant_id, incident_id,
            incident_number, status, title, html_url, changed_by, changed_at)
        VALUES (:service_id, :dedup_key, :tenant_id, :incident_id, :incident_number, :status,
            :title, :html_url, :changed_by, :changed_at)
        ON CONFLICT (service_id, dedup_key) DO UPDATE SET
            incident_id = EXCLUDED.incident_id, incident_number = EXCLUDED.incident_number,
            status = EXCLUDED.status, title = EXCLUDED.title, html_url = EXCLUDED.html_url,
            changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at
        WHERE incident_states.changed_at <= EXCLUDED.changed_at
        """,
        {
            "service_id": service_id,
            "dedup_key": dedup_key,
            "tenant_id": tenant_id,
            "incident_id": incident_id,
            "incident_number": incident_number,
            "status": status,
            "title": title,
            "html_url": html_url,
            "changed_by": changed_by,
            "changed_at": changed_at,
        },
    )
