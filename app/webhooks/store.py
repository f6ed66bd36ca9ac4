"""SQL for webhook subscriptions and seen deliveries (incident states: app/alerts/incidents.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
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


async def claim_for_check(
    db: Database, installation_id: UUID, *, every: timedelta
) -> list[Subscription]:
    """The installation's subscriptions not read from PagerDuty for `every`, stamped as read
    now in the same statement, so two workers do not both check one."""
    rows = await db.fetch_all(
        f"""
        UPDATE webhook_subscriptions SET checked_at = now()
        WHERE installation_id = :id
          AND (checked_at IS NULL OR checked_at <= now() - CAST(:every AS interval))
        RETURNING {SUBSCRIPTION_COLUMNS}
        """,
        {"id": installation_id, "every": every},
    )
    return [Subscription(**dict(r._mapping)) for r in rows]


async def replace_in_pagerduty(
    db: Database, subscription_id: UUID, *, pd_subscription_id: str, secret_enc: str
) -> None:
    """The subscription was made again in PagerDuty: same receiver URL, new id and secret."""
    await db.execute(
        """
        UPDATE webhook_subscriptions SET pd_subscription_id = :pd_id, secret_enc = :secret
        WHERE id = :id
        """,
        {"id": subscription_id, "pd_id": pd_subscription_id, "secret": secret_enc},
    )
