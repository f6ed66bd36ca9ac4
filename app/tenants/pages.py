"""Browser sign-in: a sign-in link opens a session on the settings page; sign-out ends it.

A link opened while another tenant is signed in on this browser does not switch by itself:
anyone can send anyone a link to their own tenant, and a silent switch would land the victim's
next "Connect PagerDuty" in the sender's tenant (login CSRF). So the link is only looked at,
not used, and a page asks "Switch?" with a form carrying the link's token and this session's
CSRF token; the link is used (its single use spent) only by that POST. A page of another site
can neither read the CSRF token nor post without it. A link to the tenant already signed in
changes nothing but is spent all the same.
"""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.tenants.links import redeem_login_link
from app.tenants.session_store import unused_link_tenant
from app.tenants.sessions import end_record, open_record
from app.tenants.store import get_tenant
from app.web.api import get_deps
from app.web.render import redirect, render
from app.web.routing import page
from app.web.session import SignedOut, check_csrf, current_tenant_id, session_token, sign_in

LINK_FIELD = "token"


def _unusable(request: Request) -> Response:
    return render(
        request,
        "message.html",
        {
            "heading": "This sign-in link cannot be used",
            "message": "Sign-in links work once and only for a few minutes. "
            "Go back to the product you came from and open PagerDuty settings again.",
        },
        status_code=400,
    )


def _signed_in(request: Request) -> UUID | None:
    """The tenant of this browser's session; SessionRecords has already emptied a dead one."""
    try:
        return current_tenant_id(request)
    except SignedOut:
        return None


async def _link_tenant(deps: Deps, token: str) -> UUID | None:
    link_id = deps.link_signer.unsign(token)
    if link_id is None:
        return None
    return await unused_link_tenant(deps.db, link_id=link_id, now=deps.clock())


async def _use_link(request: Request, deps: Deps, token: str) -> Response:
    tenant_id = await redeem_login_link(deps.db, deps.link_signer, token=token, now=deps.clock())
    if tenant_id is None:
        return _unusable(request)
    if tenant_id != _signed_in(request):
        record = await open_record(deps, tenant_id, replacing=session_token(request.session))
        sign_in(request, tenant_id, record)
    return redirect("/settings")


async def open_link(request: Request) -> Response:
    deps = get_deps(request)
    token = request.query_params.get(LINK_FIELD, "")
    target_id = await _link_tenant(deps, token)
    if target_id is None:
        return _unusable(request)
    current_id = _signed_in(request)
    if current_id is not None and current_id != target_id:
        current = await get_tenant(deps.db, current_id)
        target = await get_tenant(deps.db, target_id)
        if current is not None and target is not None:
            return render(
                request,
                "signin_switch.html",
                {"current": current, "target": target, "token": token},
            )
    return await _use_link(request, deps, token)


async def confirm_switch(request: Request) -> Response:
    """The "Switch" button of the page above: only a form of ours carries the CSRF token."""
    deps = get_deps(request)
    async with request.form() as form:
        check_csrf(request, form)
        token = form.get(LINK_FIELD)
    if not isinstance(token, str):
        return _unusable(request)
    return await _use_link(request, deps, token)


async def sign_out(request: Request) -> Response:
    deps = get_deps(request)
    signed_in = _signed_in(request) is not None
    async with request.form() as form:
        if signed_in:
            # Only a form of ours ends a session: another site must not sign a victim out,
            # then in to its own tenant with no question asked.
            check_csrf(request, form)
    if signed_in:
        # The record goes, so the cookie is worthless even if kept.
        await end_record(deps, session_token(request.session))
        request.session.clear()
    else:
        request.session.clear()
    return render(
        request,
        "message.html",
        {"heading": "Signed out", "message": "You can close this page."},
    )


routes = [
    page("/auth/link", open_link, methods=["GET"]),
    page("/auth/link", confirm_switch, methods=["POST"]),
    page("/auth/signout", sign_out, methods=["POST"]),
]
