"""SQL for installations (connected PagerDuty accounts) and pd_services (routing targets).

Every query is scoped by tenant: a row of another tenant is indistinguishable from no row.
Encrypted columns never reach the dataclasses; the few callers that need a secret ask for it
by name and decrypt it themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from databases import Database
from databases.interfaces import Record

from app.outbox.services import cancel_pending, mark_healthy
from app.outbox.states import ServiceHealth


@dataclass(frozen=True)
class Installation:
    id: UUID
    tenant_id: UUID
    method: str
    account_key: str
    account_id: str | None
    subdomain: str | None
    account_name: str | None
    region: str
    api_url: str | None
    events_url: str
    pd_user_id: str | None
    token_expires_at: datetime | None
    scopes: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    status_reason: str | None = None


@dataclass(frozen=True)
class PdService:
    id: UUID
    tenant_id: UUID
    installation_id: UUID
    pd_service_id: str | None
    name: str
    kind: str
    integration_id: str | None
    created_by_us: bool
    api_version: str
    rate_limit_per_minute: int
    health: ServiceHealth
    health_reason: str | None
    created_at: datetime


INSTALLATION_COLUMNS = (
    "id, tenant_id, method, account_key, account_id, subdomain, account_name, region, api_url, "
    "events_url, pd_user_id, token_expires_at, scopes, status, created_at, updated_at, "
    "status_reason"
)
SERVICE_COLUMNS = (
    "id, tenant_id, installation_id, pd_service_id, name, kind, integration_id, created_by_us, "
    "api_version, rate_limit_per_minute, health, health_reason, created_at"
)


def _installation(row: Record) -> Installation:
    return Installation(**dict(row._mapping))


def _service(row: Record) -> PdService:
    return PdService(**{**dict(row._mapping), "health": ServiceHealth(row._mapping["health"])})


async def upsert_oauth_installation(
    db: Database,
    *,
    tenant_id: UUID,
    account_id: str,
    subdomain: str,
    region: str,
    api_url: str,
    events_url: str,
    pd_user_id: str,
    access_token_enc: str,
    refresh_token_enc: str,
    token_expires_at: datetime,
    scopes: str,
) -> tuple[Installation, bool]:
    """Insert or refresh the tenant's OAuth installation of this account; True if new."""
    row = await db.fetch_one(
        f"""
        INSERT INTO installations (
            tenant_id, method, account_key, account_id, subdomain, region, api_url, events_url,
            pd_user_id, access_token_enc, refresh_token_enc, token_expires_at, scopes)
        VALUES (:tenant_id, 'oauth', :account_id, :account_id, :subdomain, :region, :api_url,
            :events_url, :pd_user_id, :access_token_enc, :refresh_token_enc, :token_expires_at,
            :scopes)
        ON CONFLICT (tenant_id, method, account_key) DO UPDATE SET
            subdomain = EXCLUDED.subdomain, region = EXCLUDED.region,
            api_url = EXCLUDED.api_url, events_url = EXCLUDED.events_url,
            pd_user_id = EXCLUDED.pd_user_id, access_token_enc = EXCLUDED.access_token_enc,
            refresh_token_enc = EXCLUDED.refresh_token_enc,
            token_expires_at = EXCLUDED.token_expires_at, scopes = EXCLUDED.scopes,
            status = 'active', status_reason = NULL, updated_at = now()
        RETURNING {INSTALLATION_COLUMNS}, (xmax = 0) AS inserted
        """,
        {
            "tenant_id": tenant_id,
            "account_id": account_id,
            "subdomain": subdomain,
            "region": region,
            "api_url": api_url,
            "events_url": events_url,
            "pd_user_id": pd_user_id,
            "access_token_enc": access_token_enc,
            "refresh_token_enc": refresh_token_enc,
            "token_expires_at": token_expires_at,
            "scopes": scopes,
        },
    )
    assert row is not None
    values = dict(row._mapping)
    inserted = bool(values.pop("inserted"))
    return Installation(**values), inserted


async def upsert_keyed_installation(
    db: Database,
    *,
    tenant_id: UUID,
    method: str,
    account_key: str,
    subdomain: str | None,
    account_name: str | None,
    region: str,
    events_url: str,
) -> Installation:
    """The tenant's Simple Install (per subdomain) or manual (one) installation."""
    row = await db.fetch_one(
        f"""
        INSERT INTO installations (
            tenant_id, method, account_key, subdomain, account_name, region, events_url)
        VALUES (:tenant_id, :method, :account_key, :subdomain, :account_name, :region, :events_url)
        ON CONFLICT (tenant_id, method, account_key) DO UPDATE SET
            account_name = COALESCE(EXCLUDED.account_name, installations.account_name),
            updated_at = now()
        RETURNING {INSTALLATION_COLUMNS}
        """,
        {
            "tenant_id": tenant_id,
            "method": method,
            "account_key": account_key,
            "subdomain": subdomain,
            "account_name": account_name,
            "region": region,
            "events_url": events_url,
        },
    )
    assert row is not None
    return _installation(row)


async def list_installations(db: Database, tenant_id: UUID) -> list[Installation]:
    rows = await db.fetch_all(
        f"""
        SELECT {INSTALLATION_COLUMNS} FROM installations
        WHERE tenant_id = :tenant_id ORDER BY created_at, id
        """,
        {"tenant_id": tenant_id},
    )
    return [_installation(row) for row in rows]


async def get_installation(
    db: Database, *, tenant_id: UUID, installation_id: UUID
) -> Installation | None:
    row = await db.fetch_one(
        f"""
        SELECT {INSTALLATION_COLUMNS} FROM installations
        WHERE id = :id AND tenant_id = :tenant_id
        """,
        {"id": installation_id, "tenant_id": tenant_id},
    )
    return None if row is None else _installation(row)


async def list_services(db: Database, tenant_id: UUID) -> list[PdService]:
    rows = await db.fetch_all(
        f"""
        SELECT {SERVICE_COLUMNS} FROM pd_services
        WHERE tenant_id = :tenant_id ORDER BY name, id
        """,
        {"tenant_id": tenant_id},
    )
    return [_service(row) for row in rows]


async def upsert_pd_service(
    db: Database,
    *,
    tenant_id: UUID,
    installation_id: UUID,
    pd_service_id: str,
    name: str,
    kind: str,
    integration_id: str | None,
    created_by_us: bool,
    routing_key_enc: str,
    routing_key_hash: str,
) -> PdService:
    """Insert or update the routing target of a PagerDuty service (or ruleset) of an
    installation: reconnecting and reinstalling update the same row, and show it healthy (its
    held events wait for `release_service`)."""
    async with db.transaction():
        row = await db.fetch_one(
            f"""
            INSERT INTO pd_services (
                tenant_id, installation_id, pd_service_id, name, kind, integration_id,
                created_by_us, routing_key_enc, routing_key_hash)
            VALUES (:tenant_id, :installation_id, :pd_service_id, :name, :kind, :integration_id,
                :created_by_us, :routing_key_enc, :routing_key_hash)
            ON CONFLICT (installation_id, pd_service_id) DO UPDATE SET
                name = EXCLUDED.name, kind = EXCLUDED.kind,
                integration_id = EXCLUDED.integration_id, created_by_us = EXCLUDED.created_by_us,
                routing_key_enc = EXCLUDED.routing_key_enc,
                routing_key_hash = EXCLUDED.routing_key_hash, updated_at = now()
            RETURNING {SERVICE_COLUMNS}
            """,
            {
                "tenant_id": tenant_id,
                "installation_id": installation_id,
                "pd_service_id": pd_service_id,
                "name": name,
                "kind": kind,
                "integration_id": integration_id,
                "created_by_us": created_by_us,
                "routing_key_enc": routing_key_enc,
                "routing_key_hash": routing_key_hash,
            },
        )
        assert row is not None
        service = _service(row)
        await mark_healthy(db, service.id)
    return replace(service, health=ServiceHealth.HEALTHY, health_reason=None)


async def insert_manual_service(
    db: Database,
    *,
    tenant_id: UUID,
    installation_id: UUID,
    name: str,
    kind: str,
    api_version: str,
    routing_key_enc: str,
    routing_key_hash: str,
) -> PdService | None:
    """None when the tenant already has a service with this routing key."""
    row = await db.fetch_one(
        f"""
        INSERT INTO pd_services (
            tenant_id, installation_id, name, kind, api_version, routing_key_enc,
            routing_key_hash)
        VALUES (:tenant_id, :installation_id, :name, :kind, :api_version, :routing_key_enc,
            :routing_key_hash)
        ON CONFLICT (tenant_id, routing_key_hash) DO NOTHING
        RETURNING {SERVICE_COLUMNS}
        """,
        {
            "tenant_id": tenant_id,
            "installation_id": installation_id,
            "name": name,
            "kind": kind,
            "api_version": api_version,
            "routing_key_enc": routing_key_enc,
            "routing_key_hash": routing_key_hash,
        },
    )
    return None if row is None else _service(row)


async def service_with_key(db: Database, *, tenant_id: UUID, routing_key_hash: str) -> UUID | None:
    """The tenant's service that already holds this routing key, if any."""
    value = await db.fetch_val(
        """
        SELECT id FROM pd_services
        WHERE tenant_id = :tenant_id AND routing_key_hash = :hash
        """,
        {"tenant_id": tenant_id, "hash": routing_key_hash},
    )
    return value if isinstance(value, UUID) else None


async def retire_services(
    db: Database, tenant_id: UUID, service_ids: list[UUID], *, reason: str
) -> int:
    """Before services are deleted: cancel their pending events (kept, marked with the reason)
    and take them out of routing rules, dropping rules left with no service. Returns how many
    events were cancelled. Call inside the transaction that deletes the services."""
    cancelled = await cancel_pending(db, service_ids, reason=reason)
    await db.execute(
        """
        UPDATE routes SET service_ids = ARRAY(
                SELECT s FROM unnest(service_ids) AS s WHERE s <> ALL(CAST(:ids AS uuid[]))),
            updated_at = now()
        WHERE tenant_id = :t AND service_ids && CAST(:ids AS uuid[])
        """,
        {"t": tenant_id, "ids": service_ids},
    )
    await db.execute(
        "DELETE FROM routes WHERE tenant_id = :t AND cardinality(service_ids) = 0",
        {"t": tenant_id},
    )
    return cancelled


async def count_services_locked(db: Database, tenant_id: UUID) -> int:
    """How many services the tenant has, holding its row until the transaction ends, so that
    transactions adding services for one tenant count one after another, each seeing what the
    one before it added. (NO KEY UPDATE: the key share lock that inserting a service takes on
    its tenant does not conflict with it, so two adders cannot deadlock.)"""
    await db.execute(
        "SELECT 1 FROM tenants WHERE id = :tenant_id FOR NO KEY UPDATE", {"tenant_id": tenant_id}
    )
    count = await db.fetch_val(
        "SELECT count(*) FROM pd_services WHERE tenant_id = :tenant_id", {"tenant_id": tenant_id}
    )
    return int(count)
