"""Choosing an OAuth installation's services: every service of the account (PagerDuty pages
through them for us), some ticked, or a new one created with an escalation policy. Each chosen
service gets an Events API v2 integration whose routing key we keep, encrypted.

Every integration is stored as soon as PagerDuty creates it, so a failure half-way leaves
nothing created in PagerDuty that we do not know about. Already connected services are not
created again: reconnecting never duplicates. The settings screen is app/settings/picker.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from app.deps import Deps
from app.errors import InputError, NotFoundError
from app.installations import caps, store
from app.installations.store import Installation
from app.installations.tokens import mark_needs_reconnect, rest_client
from app.pagerduty.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PagerDutyError,
    RetryLater,
    Unauthorized,
)
from app.pagerduty.models import EscalationPolicy, Service
from app.pagerduty.rest import RestClient
from app.tenants.store import insert_audit
from app.webhooks.subscribe import subscribe_service

INTEGRATION_NAME = "pdconnect"
NEW_SERVICE_NAME_MAX = 255


class PickRefused(Exception):
    """PagerDuty or our limits refused the choice; the message says what to do. Nothing beyond
    the services already stored was connected."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Choices:
    services: list[Service]
    policies: list[EscalationPolicy]
    connected: frozenset[str | None]


async def pickable_installation(deps: Deps, tenant_id: UUID, installation_id: UUID) -> Installation:
    installation = await store.get_installation(
        deps.db, tenant_id=tenant_id, installation_id=installation_id
    )
    if installation is None or installation.method != "oauth" or installation.api_url is None:
        raise NotFoundError("installation")
    return installation


async def _connected(deps: Deps, installation: Installation) -> frozenset[str | None]:
    return frozenset(
        s.pd_service_id
        for s in await store.list_services(deps.db, installation.tenant_id)
        if s.installation_id == installation.id
    )


async def choices(deps: Deps, installation: Installation) -> Choices:
    """The account's services (sorted by name) and escalation policies; raises PickRefused."""
    try:
        client = await rest_client(deps, installation)
        services = await client.list_services()
        policies = await client.list_escalation_policies()
    except PagerDutyError as exc:
        raise PickRefused(await _problem(deps, installation, exc)) from exc
    return Choices(
        services=sorted(services, key=lambda s: s.name.lower()),
        policies=policies,
        connected=await _connected(deps, installation),
    )


async def connect_picked(
    deps: Deps, installation: Installation, picked: list[str], new_name: str, new_policy: str
) -> tuple[int, int]:
    """Connects the picked services not connected yet, and a new service when `new_name` is
    given. Returns (how many were added, how many were connected before); raises PickRefused
    or InputError."""
    connected = await _connected(deps, installation)
    if new_name and (len(new_name) > NEW_SERVICE_NAME_MAX or not new_policy):
        raise InputError(
            "new_service_name",
            "A new service needs a name (up to 255 characters) and an escalation policy",
        )
    try:
        # Before PagerDuty is asked to create anything for services that could not be kept.
        await caps.check_room(
            deps, installation.tenant_id, len(set(picked) - connected) + bool(new_name)
        )
    except InputError as exc:
        raise PickRefused(f"Nothing was connected: {exc.message}.") from exc
    try:
        client = await rest_client(deps, installation)
        by_id = {s.id: s for s in await client.list_services()}
        if new_name:
            created = await client.create_service(name=new_name, escalation_policy_id=new_policy)
            by_id[created.id] = created
            picked = [*picked, created.id]
        unknown = [p for p in picked if p not in by_id]
        if unknown:
            raise NotFound(f"service {unknown[0]} is not in this PagerDuty account")
        added = 0
        for service_id in dict.fromkeys(picked):
            if service_id in connected:
                continue
            await _connect_service(deps, installation, client, by_id[service_id])
            added += 1
    except InvalidRequest as exc:
        raise PickRefused(str(exc)) from exc
    except PagerDutyError as exc:
        raise PickRefused(await _problem(deps, installation, exc)) from exc
    return added, len(connected)


async def _problem(deps: Deps, installation: Installation, exc: PagerDutyError) -> str:
    if isinstance(exc, Unauthorized) and installation.status == "active":
        await mark_needs_reconnect(deps, installation.id, f"PagerDuty answered 401: {exc}")
    return _pagerduty_problem(exc)


def _pagerduty_problem(exc: PagerDutyError) -> str:
    if isinstance(exc, Unauthorized):
        return "PagerDuty no longer accepts this connection. Connect PagerDuty again."
    if isinstance(exc, Forbidden):
        return (
            "The PagerDuty user who connected lacks permission for this. "
            "Ask a PagerDuty admin to connect."
        )
    if isinstance(exc, RetryLater):
        return "PagerDuty did not answer in time. Please try again."
    return str(exc)


async def _connect_service(
    deps: Deps, installation: Installation, client: RestClient, service: Service
) -> None:
    integration = await client.create_events_integration(
        service_id=service.id, name=INTEGRATION_NAME
    )
    # create_events_integration refuses an answer without a key; this narrows the type.
    assert integration.integration_key is not None
    async with deps.db.transaction():
        row = await store.upsert_pd_service(
            deps.db,
            tenant_id=installation.tenant_id,
            installation_id=installation.id,
            pd_service_id=service.id,
            name=service.name,
            kind="service",
            integration_id=integration.id,
            created_by_us=True,
            routing_key_enc=deps.vault.encrypt(integration.integration_key),
            routing_key_hash=deps.routing_key_hasher.digest(integration.integration_key),
        )
        await caps.check_cap(deps, installation.tenant_id)
        await insert_audit(
            deps.db,
            tenant_id=installation.tenant_id,
            actor="tenant admin",
            action="service.added",
            detail={
                "service_id": str(row.id),
                "pd_service_id": service.id,
                "name": service.name,
                "integration_id": integration.id,
            },
        )
    # Incident states come back through a webhook subscription per service.
    await subscribe_service(
        deps,
        client,
        tenant_id=installation.tenant_id,
        installation_id=installation.id,
        pd_service_id=service.id,
    )
