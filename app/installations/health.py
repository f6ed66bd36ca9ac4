"""Is what we created in PagerDuty still there? Checked on a schedule and on reconnect.

PagerDuty sends no callback when a customer deletes an integration or a service (pagerduty.md
§9), so we look: a REST 404 for an integration pdconnect created marks its service gone within
one check period, and its events are held (kept, visible) instead of being sent into nothing.
Reconnecting repairs what can be repaired: a missing integration is created again, and the
events held for the service go out under the new routing key."""

from __future__ import annotations

import logging
from uuid import UUID

from app.callbacks.emit import connection_changed, service_changed
from app.deps import Deps
from app.installations import store
from app.installations.store import Installation, PdService
from app.outbox import services
from app.outbox.states import ServiceHealth
from app.pagerduty.errors import NotFound, PagerDutyError, Unauthorized
from app.pagerduty.rest import RestClient

log = logging.getLogger("pdconnect.health")

INTEGRATION_NAME = "pdconnect"


async def _ours(deps: Deps, installation: Installation) -> list[PdService]:
    return [
        s
        for s in await store.list_services(deps.db, installation.tenant_id)
        if s.installation_id == installation.id and s.created_by_us and s.integration_id
    ]


async def check_installation(deps: Deps, installation: Installation, client: RestClient) -> None:
    """Mark services whose integration (or the service itself) is gone in PagerDuty."""
    for service in await _ours(deps, installation):
        assert service.pd_service_id is not None
        assert service.integration_id is not None
        try:
            await client.get_integration(
                service_id=service.pd_service_id, integration_id=service.integration_id
            )
        except NotFound:
            if service.health != ServiceHealth.GONE:
                await _gone(deps, service.id, "its integration was deleted in PagerDuty")
                log.warning("an integration created by pdconnect is gone; service held")


async def repair_installation(deps: Deps, installation: Installation, client: RestClient) -> int:
    """On reconnect: recreate missing integrations, release held events. Returns how many
    services were repaired. Unauthorized propagates (the reconnect did not take)."""
    repaired = 0
    await connection_changed(deps.db, "connection.restored", installation.id, "reconnected")
    for service in await _ours(deps, installation):
        assert service.pd_service_id is not None
        assert service.integration_id is not None
        try:
            await client.get_integration(
                service_id=service.pd_service_id, integration_id=service.integration_id
            )
        except NotFound:
            if not await _recreate(deps, installation, client, service):
                continue
        except Unauthorized:
            raise
        except PagerDutyError as exc:
            log.warning("could not verify an integration on reconnect: %s", exc)
            continue
        if service.health != ServiceHealth.HEALTHY or await services.has_held(deps.db, service.id):
            await services.release_service(deps.db, service.id)
            await service_changed(deps.db, "connection.restored", service.id, "repaired")
            repaired += 1
    return repaired


async def _recreate(
    deps: Deps, installation: Installation, client: RestClient, service: PdService
) -> bool:
    assert service.pd_service_id is not None
    try:
        integration = await client.create_events_integration(
            service_id=service.pd_service_id, name=INTEGRATION_NAME
        )
    except NotFound:
        await _gone(deps, service.id, "the service was deleted in PagerDuty")
        return False
    assert integration.integration_key is not None
    await store.upsert_pd_service(
        deps.db,
        tenant_id=installation.tenant_id,
        installation_id=installation.id,
        pd_service_id=service.pd_service_id,
        name=service.name,
        kind=service.kind,
        integration_id=integration.id,
        created_by_us=True,
        routing_key_enc=deps.vault.encrypt(integration.integration_key),
        routing_key_hash=deps.routing_key_hasher.digest(integration.integration_key),
    )
    return True


async def _gone(deps: Deps, service_id: UUID, reason: str) -> None:
    await services.hold_services(
        deps.db,
        health=ServiceHealth.GONE,
        reason=reason,
        service_id=service_id,
        note_on_events=True,
    )
    await service_changed(deps.db, "connection.broken", service_id, reason)
