"""The service picker of an OAuth installation (app/installations/picks.py does the work):
the account's services, connected ones first and shown as such, each with its escalation
policy; a search (as you type with static/picker.js, or `?q=` without script), a count of the
ticked ones and a "select all shown"; and a form to create a new service."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.errors import InputError
from app.installations.picks import PickRefused, choices, connect_picked, pickable_installation
from app.installations.store import Installation
from app.pagerduty.models import Service
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

PD_ID = re.compile(r"^[A-Z0-9]{1,32}$")
MAX_PICKED = 1000
QUERY_MAX_LENGTH = 100


def matches(service: Service, query: str) -> bool:
    """The search: every word of the query in the service's name or escalation policy."""
    text = f"{service.name} {service.escalation_policy_name or ''}".lower()
    return all(word in text for word in query.lower().split())


def ordered(services: list[Service], connected: Collection[str | None]) -> list[Service]:
    """Connected services first (what this account already pages), then by name as given."""
    return sorted(services, key=lambda s: s.id not in connected)


async def picker_view(
    request: Request,
    deps: Deps,
    installation: Installation,
    *,
    picked: Collection[str] = (),
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    try:
        offered = await choices(deps, installation)
    except PickRefused as exc:
        flash(request, "error", exc.message)
        return redirect("/settings")
    query = request.query_params.get("q", "").strip()[:QUERY_MAX_LENGTH]
    services = ordered(offered.services, offered.connected)
    shown = [s for s in services if matches(s, query)] if query else services
    return render(
        request,
        "picker.html",
        {
            "installation": installation,
            "services": shown,
            "total": len(services),
            "query": query,
            "policies": offered.policies,
            "connected": offered.connected,
            "picked": set(picked),
            "form": form or {"values": {}, "errors": {}},
        },
        status_code=status_code,
    )


async def show_picker(request: Request) -> Response:
    deps = get_deps(request)
    installation = await pickable_installation(
        deps,
        current_tenant_id(request),
        path_uuid(request, "installation_id", "installation"),
    )
    return await picker_view(request, deps, installation)


async def save_picks(request: Request) -> Response:
    deps = get_deps(request)
    installation = await pickable_installation(
        deps,
        current_tenant_id(request),
        path_uuid(request, "installation_id", "installation"),
    )
    async with request.form(max_fields=MAX_PICKED + 10) as form:
        check_csrf(request, form)
        picked = [str(v) for v in form.getlist("service")]
        new_name = str(form.get("new_service_name") or "").strip()
        new_policy = str(form.get("new_service_policy") or "").strip()
    if any(not PD_ID.match(p) for p in picked):
        flash(request, "error", "The list of services was not understood. Please pick again.")
        return redirect(f"/settings/installations/{installation.id}/services")
    values = {"new_service_name": new_name, "new_service_policy": new_policy}
    try:
        added, kept = await connect_picked(deps, installation, picked, new_name, new_policy)
    except (InputError, PickRefused) as exc:
        errors = (
            {"new_service": f"{exc.message}."}
            if isinstance(exc, InputError) and exc.field == "new_service_name"
            else {"form": exc.message if isinstance(exc, PickRefused) else f"{exc.message}."}
        )
        refused = {"values": values, "errors": errors}
        return await picker_view(
            request, deps, installation, picked=picked, form=refused, status_code=422
        )
    if added:
        flash(request, "ok", f"Connected {added} service{'s' if added != 1 else ''}.")
    else:
        flash(
            request,
            "ok",
            f"No new services chosen; {kept} service{'s' if kept != 1 else ''} stay connected.",
        )
    # The connection page says next what alerts need (a rule, once there are several).
    return redirect("/settings")


routes = [
    page("/settings/installations/{installation_id}/services", show_picker, methods=["GET"]),
    page("/settings/installations/{installation_id}/services", save_picks, methods=["POST"]),
]
