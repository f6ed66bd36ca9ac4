"""The service picker of an OAuth installation (app/installations/picks.py does the work):
the account's services, already connected ones ticked, and a form to create a new one."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from app.errors import InputError
from app.installations.picks import PickRefused, choices, connect_picked, pickable_installation
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

PD_ID = re.compile(r"^[A-Z0-9]{1,32}$")
MAX_PICKED = 1000


async def show_picker(request: Request) -> Response:
    deps = get_deps(request)
    installation = await pickable_installation(
        deps,
        current_tenant_id(request),
        path_uuid(request, "installation_id", "installation"),
    )
    try:
        offered = await choices(deps, installation)
    except PickRefused as exc:
        flash(request, "error", exc.message)
        return redirect("/settings")
    return render(
        request,
        "picker.html",
        {
            "installation": installation,
            "services": offered.services,
            "policies": offered.policies,
            "connected": offered.connected,
        },
    )


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
    back = f"/settings/installations/{installation.id}/services"
    if any(not PD_ID.match(p) for p in picked):
        flash(request, "error", "The list of services was not understood. Please pick again.")
        return redirect(back)
    try:
        added, kept = await connect_picked(deps, installation, picked, new_name, new_policy)
    except InputError as exc:
        flash(request, "error", f"{exc.message}.")
        return redirect(back)
    except PickRefused as exc:
        flash(request, "error", exc.message)
        return redirect(back)
    if added:
        flash(request, "ok", f"Connected {added} service{'s' if added != 1 else ''}.")
    else:
        flash(
            request,
            "ok",
            f"No new services chosen; {kept} service{'s' if kept != 1 else ''} stay connected.",
        )
    return redirect("/settings")


routes = [
    page("/settings/installations/{installation_id}/services", show_picker, methods=["GET"]),
    page("/settings/installations/{installation_id}/services", save_picks, methods=["POST"]),
]
