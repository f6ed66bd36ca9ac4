"""`GET /settings/maintenance`: the tenant's maintenance windows (on now, next, what happens to
held alerts at the end), a form for a new one, and ending one early or removing it.
app/ingest/maintenance.py does the work; a refused form comes back with what was typed."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.errors import InputError, NotFoundError
from app.ingest import maintenance
from app.ingest.windows import window_json
from app.installations import store as installations_store
from app.settings.frame import signed_in_tenant
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

MAINTENANCE = "/settings/maintenance"


async def maintenance_view(
    request: Request, deps: Deps, *, form: dict[str, Any] | None = None, status_code: int = 200
) -> Response:
    tenant = await signed_in_tenant(request, deps)
    now = deps.clock()
    windows = [window_json(w, now) for w in await maintenance.list_windows(deps, tenant.id)]
    services = await installations_store.list_services(deps.db, tenant.id)
    return render(
        request,
        "maintenance.html",
        {
            "tenant": tenant,
            "windows": windows,
            "service_names": {str(s.id): s.name for s in services},
            "all_services": services,
            "form": form or {"values": {"time_zone": "UTC", "recurrence": "once"}, "errors": {}},
            "message_places": ("windows", "add-window"),
        },
        status_code=status_code,
    )


async def maintenance_page(request: Request) -> Response:
    return await maintenance_view(request, get_deps(request))


async def add_window(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        values = {k: str(form.get(k) or "").strip() for k in form if k != "service_ids"}
        service_ids = [str(v) for v in form.getlist("service_ids")]
    body = {
        "name": values.get("name") or None,
        "starts_at": _with_zone(values.get("starts_at", ""), values.get("time_zone") or "UTC"),
        "ends_at": _with_zone(values.get("ends_at", ""), values.get("time_zone") or "UTC"),
        "recurrence": values.get("recurrence") or "once",
        "time_zone": values.get("time_zone") or "UTC",
        "service_ids": service_ids,
        "on_end": values.get("on_end") or "drop",
    }
    try:
        await maintenance.create_window(deps, tenant_id, body, actor="tenant admin")
    except InputError as exc:
        errors = {exc.field or "form": exc.message}
        shown = {"values": {**values, "service_ids": service_ids}, "errors": errors}
        return await maintenance_view(request, deps, form=shown, status_code=422)
    flash(
        request,
        "ok",
        f"Maintenance window '{body['name'] or 'Maintenance'}' added.",
        near="add-window",
    )
    return redirect(f"{MAINTENANCE}#add-window")


def _with_zone(value: str, zone: str) -> str | None:
    """A form's local time (`2030-01-31T02:00`) as an RFC 3339 time in `zone`."""
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
        if local.tzinfo is None:
            local = local.replace(tzinfo=ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError):
        return value
    return local.isoformat()


async def end_window(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
    window_id = path_uuid(request, "window_id", "maintenance window")
    if not await maintenance.end_window(deps, tenant_id, window_id, actor="tenant admin"):
        raise NotFoundError("maintenance window")
    flash(request, "ok", "Maintenance window ended.", near="windows")
    return redirect(MAINTENANCE)


async def delete_window(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
    window_id = path_uuid(request, "window_id", "maintenance window")
    if not await maintenance.delete_window(deps, tenant_id, window_id, actor="tenant admin"):
        raise NotFoundError("maintenance window")
    flash(request, "ok", "Maintenance window removed.", near="windows")
    return redirect(MAINTENANCE)


routes = [
    page(MAINTENANCE, maintenance_page, methods=["GET"]),
    page(MAINTENANCE, add_window, methods=["POST"]),
    page(MAINTENANCE + "/{window_id}/end", end_window, methods=["POST"]),
    page(MAINTENANCE + "/{window_id}/delete", delete_window, methods=["POST"]),
]
