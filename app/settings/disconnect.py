"""The settings page's Disconnect: a confirmation page that says exactly what will happen,
then the disconnect itself, reported in a message and in the activity log."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.errors import NotFoundError
from app.installations import store
from app.installations.disconnect import disconnect, plan
from app.installations.revoke_by_hand import WHERE
from app.installations.store import Installation
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id


async def _installation(request: Request, deps: Deps, tenant_id: UUID) -> Installation:
    installation = await store.get_installation(
        deps.db,
        tenant_id=tenant_id,
        installation_id=path_uuid(request, "installation_id", "installation"),
    )
    if installation is None:
        raise NotFoundError("installation")
    return installation


async def confirm(request: Request) -> Response:
    deps = get_deps(request)
    installation = await _installation(request, deps, current_tenant_id(request))
    context = {"plan": await plan(deps, installation), "revoke_where": WHERE}
    return render(request, "disconnect.html", context)


async def do_disconnect(request: Request) -> Response:
    deps = get_deps(request)
    installation = await _installation(request, deps, current_tenant_id(request))
    async with request.form() as form:
        check_csrf(request, form)
    report = await disconnect(deps, installation, actor="tenant admin")
    name = installation.subdomain or "keys added by hand"
    flash(
        request, "ok", f"Disconnected {name}. {report.cancelled_events} pending event(s) cancelled."
    )
    if report.not_deleted:
        flash(request, "error", "Could not delete in PagerDuty: " + "; ".join(report.not_deleted))
    if report.manual_steps:
        flash(request, "error", "Delete in PagerDuty yourself: " + "; ".join(report.manual_steps))
    if report.revoke_yourself:
        flash(request, "error", report.revoke_yourself)
    return redirect("/settings")


routes = [
    page("/settings/installations/{installation_id}/disconnect", confirm, methods=["GET"]),
    page("/settings/installations/{installation_id}/disconnect", do_disconnect, methods=["POST"]),
]
