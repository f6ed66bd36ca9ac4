"""`GET /settings`: the tenant's PagerDuty connections, and the manual-key form."""

from __future__ import annotations

from collections import defaultdict

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.dispatch.store import list_events
from app.errors import ConflictError, InputError
from app.ingest import store as ingest_store
from app.ingest.severity import PD_SEVERITIES, parse_severity_map
from app.installations import store
from app.installations.manual import add_manual_service, validate_manual_key
from app.installations.service_actions import rekey, remove, tenant_service
from app.installations.store import PdService
from app.tenants.store import get_tenant, list_audit
from app.web.api import get_deps, path_uuid
from app.web.pages import flash, redirect, render
from app.web.session import SignedOut, check_csrf, current_tenant_id

EVENTS_SHOWN = 25
METHOD_LABELS = {"oauth": "OAuth", "simple_install": "Simple Install", "manual": "Manual key"}
REGION_LABELS = {"us": "US", "eu": "EU"}


async def settings_page(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    tenant = await get_tenant(deps.db, tenant_id)
    if tenant is None:
        request.session.clear()
        raise SignedOut()
    installations = await store.list_installations(deps.db, tenant_id)
    services: dict[object, list[PdService]] = defaultdict(list)
    all_services = await store.list_services(deps.db, tenant_id)
    for service in all_services:
        services[service.installation_id].append(service)
    severities = parse_severity_map(await ingest_store.severity_map(deps.db, tenant_id))
    return render(
        request,
        "settings.html",
        {
            "tenant": tenant,
            "installations": installations,
            "services": services,
            "audit": await list_audit(deps.db, tenant_id, limit=20),
            "all_services": all_services,
            "service_names": {str(s.id): s.name for s in all_services},
            "rules": await ingest_store.list_rules(deps.db, tenant_id),
            "severities": severities,
            "pd_severities": PD_SEVERITIES,
            "events": await list_events(deps.db, tenant_id, limit=EVENTS_SHOWN),
            "oauth_enabled": deps.settings.oauth_enabled,
            "install_enabled": deps.settings.simple_install_enabled,
            "method_labels": METHOD_LABELS,
            "region_labels": REGION_LABELS,
        },
    )


async def add_manual_key(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        name, routing_key, api = form.get("name"), form.get("routing_key"), form.get("api")
    try:
        key = validate_manual_key(name, routing_key, api)
        service = await add_manual_service(deps, tenant_id, key, actor="tenant admin")
    except (InputError, ConflictError) as exc:
        flash(
            request, "error", f"The key was not added: {exc.field.replace('_', ' ')} {exc.message}."
        )
        return redirect("/settings")
    flash(request, "ok", f"Added {service.name}.")
    return redirect("/settings")


async def rekey_service(request: Request) -> Response:
    deps = get_deps(request)
    service = await tenant_service(
        deps, current_tenant_id(request), path_uuid(request, "service_id", "service")
    )
    async with request.form() as form:
        check_csrf(request, form)
        routing_key = form.get("routing_key")
    try:
        await rekey(deps, service, routing_key, actor="tenant admin")
    except (InputError, ConflictError) as exc:
        flash(request, "error", f"The key was not changed: {exc.message}.")
        return redirect("/settings")
    flash(request, "ok", f"{service.name} has a new key; its held events are on their way.")
    return redirect("/settings")


async def remove_service(request: Request) -> Response:
    deps = get_deps(request)
    service = await tenant_service(
        deps, current_tenant_id(request), path_uuid(request, "service_id", "service")
    )
    async with request.form() as form:
        check_csrf(request, form)
    cancelled = await remove(deps, service, actor="tenant admin")
    flash(request, "ok", f"Removed {service.name}; {cancelled} pending event(s) cancelled.")
    return redirect("/settings")


async def home(request: Request) -> Response:
    return RedirectResponse("/settings", status_code=302)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/settings", settings_page, methods=["GET"]),
    Route("/settings/services/manual", add_manual_key, methods=["POST"]),
    Route("/settings/services/{service_id}/rekey", rekey_service, methods=["POST"]),
    Route("/settings/services/{service_id}/remove", remove_service, methods=["POST"]),
]
