"""Rows the store tests start from, written through the product's own store functions."""

from __future__ import annotations

from uuid import UUID

from databases import Database

from app.installations import store as installations
from app.tenants import store as tenants


async def pasted_installation(db: Database, tenant_id: UUID) -> UUID:
    """The tenant's installation for keys pasted by hand (made once, then found again)."""
    inst = await installations.upsert_keyed_installation(
        db,
        tenant_id=tenant_id,
        method="manual",
        account_key="manual",
        subdomain=None,
        account_name=None,
        region="us",
        events_url="http://127.0.0.1:9/v2/enqueue",
    )
    return inst.id


async def manual_service(
    db: Database, key_hash: str, *, name: str = "svc", routing_key_enc: str = "not read here"
) -> tuple[UUID, UUID]:
    """A new tenant with one service connected by a pasted key: (tenant id, service id)."""
    tenant = await tenants.insert_tenant(db, name="T", external_id=None)
    assert tenant is not None
    svc = await installations.insert_manual_service(
        db,
        tenant_id=tenant.id,
        installation_id=await pasted_installation(db, tenant.id),
        name=name,
        kind="manual",
        api_version="v2",
        routing_key_enc=routing_key_enc,
        routing_key_hash=key_hash,
    )
    assert svc is not None
    return tenant.id, svc.id
