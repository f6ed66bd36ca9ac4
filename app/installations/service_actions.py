"""Fixing one broken service without disconnecting its account: give it a new routing key
(re-key), or remove it. Either way its held events stop waiting: a re-key sends them under the
new key, a removal cancels them (visible, with the reason)."""

from __future__ import annotations

from uuid import UUID

from app.deps import Deps
from app.errors import ConflictError, InputError, NotFoundError
from app.installations import store
from app.installations.manual import ROUTING_KEY, ROUTING_KEY_LENGTH
from app.installations.store import PdService
from app.outbox import services
from app.tenants.store import insert_audit


async def tenant_service(deps: Deps, tenant_id: UUID, service_id: UUID) -> PdService:
    for service in await store.list_services(deps.db, tenant_id):
        if service.id == service_id:
            return service
    raise NotFoundError("service")


async def rekey(deps: Deps, service: PdService, routing_key: object, *, actor: str) -> None:
    if not isinstance(routing_key, str) or not ROUTING_KEY.match(routing_key.strip()):
        raise InputError(
            "routing_key", f"must be PagerDuty's {ROUTING_KEY_LENGTH}-character integration key"
        )
    key = routing_key.strip()
    digest = deps.routing_key_hasher.digest(key)
    # A tenant holds each key once, so any other holder, even in the same account, clashes.
    holder = await store.service_with_key(
        deps.db, tenant_id=service.tenant_id, routing_key_hash=digest
    )
    if holder is not None and holder != service.id:
        raise ConflictError("routing_key", "this key is already connected to another service")
    async with deps.db.transaction():
        await deps.db.execute(
            """
            UPDATE pd_services SET routing_key_enc = :enc, routing_key_hash = :hash,
                updated_at = now()
            WHERE id = :id
            """,
            {"id": service.id, "enc": deps.vault.encrypt(key), "hash": digest},
        )
        await services.release_service(deps.db, service.id)
        await insert_audit(
            deps.db,
            tenant_id=service.tenant_id,
            actor=actor,
            action="service.rekeyed",
            detail={"service_id": str(service.id), "name": service.name},
        )


async def remove(deps: Deps, service: PdService, *, actor: str) -> int:
    """Forget the service; returns how many pending events were cancelled. An integration
    pdconnect created stays in PagerDuty until its account is disconnected."""
    async with deps.db.transaction():
        cancelled = await store.retire_services(
            deps.db,
            service.tenant_id,
            [service.id],
            reason=f"cancelled: the service was removed by {actor}",
        )
        await deps.db.execute("DELETE FROM pd_services WHERE id = :id", {"id": service.id})
        await insert_audit(
            deps.db,
            tenant_id=service.tenant_id,
            actor=actor,
            action="service.removed",
            detail={
                "service_id": str(service.id),
                "name": service.name,
                "cancelled_events": cancelled,
            },
        )
    return cancelled
