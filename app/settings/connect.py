"""`GET /pagerduty/connect` and `GET /pagerduty/callback`: starting and finishing a connect.

The attempt in progress lives in the session: its `state` (checked in constant time on the
way back, and popped before anything else so a callback can be used only once), the PKCE
verifier for OAuth, and when it started. Every refusal ends on the settings page with a message
saying what happened; nothing is stored unless the whole answer checked out.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.crypto import same
from app.installations.oauth_flow import finish_oauth, start_oauth
from app.installations.outcome import ConnectRefused
from app.installations.simple_install import finish_install, start_install
from app.web.api import get_deps
from app.web.render import flash, redirect
from app.web.routing import page
from app.web.session import current_tenant_id

CONNECT_KEY = "connect"
# Long enough to sign in to PagerDuty and pick services; short enough that a stale tab fails.
ATTEMPT_MAX_AGE_SECONDS = 15 * 60


async def connect(request: Request) -> Response:
    deps = get_deps(request)
    current_tenant_id(request)
    config = deps.config
    default = "oauth" if config.oauth_enabled else "install"
    method = request.query_params.get("method") or default
    if method == "install" and config.simple_install_enabled:
        attempt, url = start_install(deps)
    elif method == "oauth" and config.oauth_enabled:
        attempt, url = start_oauth(deps)
    else:
        flash(
            request, "error", "That way of connecting PagerDuty is not set up on this deployment."
        )
        return redirect("/settings")
    request.session[CONNECT_KEY] = {**attempt, "started": time.time()}
    return RedirectResponse(url, status_code=302)


def _take_attempt(request: Request) -> dict[str, Any] | None:
    """The attempt this callback answers, or None; it is removed from the session either way."""
    attempt = request.session.pop(CONNECT_KEY, None)
    if not isinstance(attempt, dict):
        return None
    sent = request.query_params.get("state", "")
    expected = attempt.get("state")
    if not isinstance(expected, str) or not sent or not same(sent, expected):
        return None
    started = attempt.get("started")
    if not isinstance(started, (int, float)) or time.time() - started > ATTEMPT_MAX_AGE_SECONDS:
        return None
    return attempt


async def callback(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    attempt = _take_attempt(request)
    if attempt is None:
        flash(
            request,
            "error",
            "This answer from PagerDuty does not belong to a connection started here "
            "(the state did not match or the attempt expired). Nothing was saved; "
            "please click Connect PagerDuty again.",
        )
        return redirect("/settings")
    params = dict(request.query_params)
    try:
        if attempt.get("method") == "install":
            done = await finish_install(deps, tenant_id, params)
        else:
            done = await finish_oauth(deps, tenant_id, params, attempt)
    except ConnectRefused as exc:
        flash(request, "error", exc.message)
        return redirect("/settings")
    for level, message in done.notices:
        flash(request, level, message)
    if done.pick_services_of is not None:
        return redirect(f"/settings/installations/{done.pick_services_of}/services")
    return redirect("/settings")


routes = [
    page("/pagerduty/connect", connect, methods=["GET"]),
    page("/pagerduty/callback", callback, methods=["GET"]),
]
