"""Browser sign-in: a sign-in link opens a session on the settings page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.tenants.links import redeem_login_link
from app.web.api import get_deps
from app.web.pages import redirect, render
from app.web.session import check_csrf, sign_in


async def open_link(request: Request) -> Response:
    deps = get_deps(request)
    token = request.query_params.get("token", "")
    tenant_id = await redeem_login_link(deps.db, deps.link_signer, token=token, now=deps.clock())
    if tenant_id is None:
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
    sign_in(request, tenant_id)
    return redirect("/settings")


async def sign_out(request: Request) -> Response:
    async with request.form() as form:
        check_csrf(request, form)
    request.session.clear()
    return render(
        request,
        "message.html",
        {"heading": "Signed out", "message": "You can close this page."},
    )


routes = [
    Route("/auth/link", open_link, methods=["GET"]),
    Route("/auth/signout", sign_out, methods=["POST"]),
]
