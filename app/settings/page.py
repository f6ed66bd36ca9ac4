"""`GET /settings`: the connection at a glance (each PagerDuty account, its services with their
health, who is on call, last delivery and last error, a test button each; the account's last
connection check and a button to run it), what to do next when alerts would be refused, the
latest deliveries; and the forms of this page: a key pasted by hand, a new key for a broken
service, removing one, running a connection check, and the start of a Simple Install with the
account's region. A refused form is shown again with what was typed and the problem beside
its field."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.deps import Deps
from app.dispatch.log_store import list_events
from app.errors import ConflictError, InputError, NotFoundError
from app.installations import store
from app.installations.health_check import check_connection, last_reports
from app.installations.manual import add_manual_service, validate_manual_key
from app.installations.regions import REGION_CHOICES, REGION_LABELS, read_region
from app.installations.service_actions import rekey, remove, tenant_service
from app.installations.simple_install import start_install
from app.installations.store import PdService
from app.oncall.view import ServiceOnCall, tenant_oncall
from app.settings.connect import CONNECT_KEY
from app.settings.deliveries import history_kept
from app.settings.frame import key_refused, needs_first_rule, reconnect_url, signed_in_tenant
from app.settings.store import service_activity
from app.settings.words import key_errors
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

# The overview shows the latest few deliveries; the Deliveries page has the whole history.
EVENTS_SHOWN = 5
METHOD_LABELS = {"oauth": "OAuth", "simple_install": "Simple Install", "manual": "Manual key"}
CHECK_TRIGGERS = {
    "settings": "from this page",
    "api": "through the API",
    "scheduled": "on schedule",
}


async def connection_view(
    request: Request,
    deps: Deps,
    *,
    manual: dict[str, Any] | None = None,
    rekeying: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """The page, as shown after a GET or with a refused form's values and errors."""
    tenant = await signed_in_tenant(request, deps)
    installations = await store.list_installations(deps.db, tenant.id)
    services: dict[UUID, list[PdService]] = defaultdict(list)
    all_services = await store.list_services(deps.db, tenant.id)
    for service in all_services:
        services[service.installation_id].append(service)
    oncall = await tenant_oncall(deps, tenant.id)
    oncall_services: dict[UUID, ServiceOnCall] = {
        entry.service.id: entry
        for account in oncall
        if account.available
        for entry in account.services
    }
    return render(
        request,
        "settings.html",
        {
            "tenant": tenant,
            "installations": installations,
            "services": services,
            "all_services": all_services,
            "activity": await service_activity(deps.db, tenant.id),
            "needs_rule": await needs_first_rule(deps, tenant.id, all_services),
            "reconnect_urls": {i.id: reconnect_url(i) for i in installations},
            "key_refused": {s.id for s in all_services if key_refused(s)},
            "events": await list_events(deps.db, tenant.id, limit=EVENTS_SHOWN),
            "history": history_kept(deps.config.retention_days),
            "oauth_enabled": deps.config.oauth_enabled,
            "install_enabled": deps.config.simple_install_enabled,
            "method_labels": METHOD_LABELS,
            "region_labels": REGION_LABELS,
            "region_choices": REGION_CHOICES,
            "default_region": deps.config.pagerduty_region,
            "manual": manual or {"values": {}, "errors": {}},
            "rekeying": rekeying or {"service_id": None, "errors": {}},
            "message_places": ("first-rule", "manual-key"),
            "oncall_accounts": {account.installation.id: account for account in oncall},
            "oncall_services": oncall_services,
            "health": await last_reports(deps, tenant.id),
            "check_triggers": CHECK_TRIGGERS,
        },
        status_code=status_code,
    )


async def settings_page(request: Request) -> Response:
    return await connection_view(request, get_deps(request))


async def add_manual_key(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        name, routing_key, api = form.get("name"), form.get("routing_key"), form.get("api")
        region = form.get("region")
    try:
        key = validate_manual_key(
            name, routing_key, api, region, default_region=deps.config.pagerduty_region
        )
        service = await add_manual_service(deps, tenant_id, key, actor="tenant admin")
    except (InputError, ConflictError) as exc:
        # The key itself is never sent back into the page: it is typed again.
        values = {"name": name, "api": api, "region": region}
        manual = {"values": values, "errors": key_errors(exc)}
        return await connection_view(request, deps, manual=manual, status_code=422)
    flash(request, "ok", f"Added {service.name}.")
    return redirect("/settings")


async def start_simple_install(request: Request) -> Response:
    """A Simple Install button, one per region: PagerDuty's answer will not say the account's.
    Like `GET /pagerduty/connect` it is a link that leaves the attempt in the session, not a
    form: the CSP's form-action 'self' stops a form whose answer redirects to PagerDuty."""
    deps = get_deps(request)
    current_tenant_id(request)
    chosen = request.query_params.get("region")
    if not deps.config.simple_install_enabled:
        flash(request, "error", "Simple Install is not set up on this deployment.")
        return redirect("/settings")
    try:
        region = read_region(chosen, deps.config.pagerduty_region)
    except InputError as exc:
        flash(request, "error", f"Simple Install was not started: region {exc.message}.")
        return redirect("/settings")
    attempt, url = start_install(deps, region)
    request.session[CONNECT_KEY] = {**attempt, "started": time.time()}
    return RedirectResponse(url, status_code=302)


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
        rekeying = {"service_id": service.id, "errors": key_errors(exc)}
        return await connection_view(request, deps, rekeying=rekeying, status_code=422)
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


async def check_installation(request: Request) -> Response:
    """The Check connection button: the report replaces the account's last one on the page."""
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    installation = await store.get_installation(
        deps.db,
        tenant_id=tenant_id,
        installation_id=path_uuid(request, "installation_id", "installation"),
    )
    if installation is None:
        raise NotFoundError("installation")
    async with request.form() as form:
        check_csrf(request, form)
    report = await check_connection(deps, installation, trigger="settings")
    if report.problems:
        flash(
            request,
            "error" if report.status == "failed" else "ok",
            f"Connection check finished: {report.problems} line(s) need attention, see below.",
        )
    else:
        flash(request, "ok", "Connection check finished: everything is ok.")
    return redirect(f"/settings#check-{installation.id}")


async def home(request: Request) -> Response:
    return RedirectResponse("/settings", status_code=302)


routes = [
    page("/", home, methods=["GET"]),
    page("/settings", settings_page, methods=["GET"]),
    page("/settings/services/manual", add_manual_key, methods=["POST"]),
    page("/settings/connect/install", start_simple_install, methods=["GET"]),
    page("/settings/services/{service_id}/rekey", rekey_service, methods=["POST"]),
    page("/settings/services/{service_id}/remove", remove_service, methods=["POST"]),
    page(
        "/settings/installations/{installation_id}/health-check",
        check_installation,
        methods=["POST"],
    ),
]
