"""The service picker of an OAuth installation: every service of the account (PagerDuty pages
through them for us), tick some, or create a new one with an escalation policy. Each chosen
service gets an Events API v2 integration whose routing key we keep, encrypted.

Every integration is stored as soon as PagerDuty creates it, so a failure half-way leaves
nothing created in PagerDuty that we do not know about. Already connected services are shown
ticked and are not created again: reconnecting never duplicates.
"""

from __future__ import annotations

import re
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
from app.pagerduty.models import Service
from app.pagerduty.rest import RestClient
from app.tenants.store import insert_audit
from app.web.api import get_deps, path_uuid
from app.web.pages import flash, redirect, render
from app.web.session import check_csrf, current_tenant_id
from app.webhooks.subscribe import subscribe_service

INTEGRATION_NAME = "pdconnect"
PD_ID = re.compile(r"^[A-Z0-9]{1,32}$")
NEW_SERVICE_NAME_MAX = 255
MAX_PICKED = 1000


async def _installation(request: Request, deps: Deps, tenant_id: UUID) -> Installation:
    installation = await store.get_installation(
        deps.db,
        tenant_id=tenant_id,
        installation_id=path_uuid(request, "installation_id", "installation"),
    )
    if installation is None or installation.method != "oauth" or installation.api_url is None:
        raise NotFoundError("installation")
    return installation


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


async def show_picker(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    installation = await _installation(request, deps, tenant_id)
    try:
        client = await rest_client(deps, installation)
        services = await client.list_services()
        policies = await client.list_escalation_policies()
    except PagerDutyError as exc:
        flash(request, "error", await _problem(deps, installation, exc))
        return redirect("/settings")
    connected = {
        s.pd_service_id
        for s in await store.list_services(deps.db, tenant_id)
        if s.installation_id == installation.id
    }
    return render(
        request,
        "picker.html",
        {
            "installation": installation,
            "services": sorted(services, key=lambda s: s.name.lower()),
            "policies": policies,
            "connected": connected,
        },
    )


async def save_picks(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    installation = await _installation(request, deps, tenant_id)
    async with request.form(max_fields=MAX_PICKED + 10) as form:
        check_csrf(request, form)
        picked = [str(v) for v in form.getlist("service")]
        new_name = str(form.get("new_service_name") or "").strip()
        new_policy = str(form.get("new_service_policy") or "").strip()
    back = f"/settings/installations/{installation.id}/services"
    if any(not PD_ID.match(p) for p in picked):
        flash(request, "error", "The list of services was not understood. Please pick again.")
        return redirect(back)
    if new_name and (len(new_name) > NEW_SERVICE_NAME_MAX or not new_policy):
        flash(
            request,
            "error",
            "A new service needs a name (up to 255 characters) and an escalation policy.",
        )
        return redirect(back)

    connected = {
        s.pd_service_id
        for s in await store.list_services(deps.db, tenant_id)
        if s.installation_id == installation.id
    }
    try:
        # Before PagerDuty is asked to create anything for services that could not be kept.
        await caps.check_room(deps, tenant_id, len(set(picked) - connected) + bool(new_name))
    except InputError as exc:
        flash(request, "error", f"Nothing was connected: {exc.message}.")
        return redirect(back)
    try:
        client = await rest_client(deps, installation)
        by_id = {s.id: s for s in await client.list_services()}
        if new_name:
            created = await client.create_service(name=new_name, escalation_policy_id=new_policy)
            by_id[created.id] = created
            picked.append(created.id)
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
        flash(request, "error", str(exc))
        return redirect(back)
    except PagerDutyError as exc:
        flash(request, "error", await _problem(deps, installation, exc))
        return redirect(back)
    if added:
        flash(request, "ok", f"Connected {added} service{'s' if added != 1 else ''}.")
    else:
        kept = len(connected)
        flash(
            request,
            "ok",
            f"No new services chosen; {kept} service{'s' if kept != 1 else ''} stay connected.",
        )
    return redirect("/settings")


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


routes = [
    Route("/settings/installations/{installation_id}/services", show_picker, methods=["GET"]),
    Route("/settings/installations/{installation_id}/services", save_picks, methods=["POST"]),
]
