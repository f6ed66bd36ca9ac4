"""`SessionRecords`, a middleware inside the session cookie's: it empties the session of a
request whose server-side record (app/tenants/sessions.py) is gone or expired, so every page
sees a signed-out browser ("Please sign in", never an error about a tenant that no longer
exists) and the answer clears the cookie."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.errors import DATABASE_UNREACHABLE
from app.deps import Deps
from app.tenants.sessions import live_record_tenant
from app.web.session import TENANT_KEY, session_token

# Static files read no session: a page's stylesheet costs no lookup.
UNCHECKED_PREFIX = "/static/"

OnUnreachable = Callable[[Request, Exception], Awaitable[Response]]


async def live_tenant(deps: Deps, session: dict[str, Any]) -> UUID | None:
    """The tenant this session is signed in to, if its record is live and agrees."""
    token = session_token(session)
    if token is None:
        return None
    tenant_id = await live_record_tenant(deps, token)
    if tenant_id is None or str(tenant_id) != session.get(TENANT_KEY):
        return None
    return tenant_id


class SessionRecords:
    """Empties a signed-in session whose record is not live, before any route reads it; and
    stores no session that is not signed in.

    The second is what keeps a cross-site form from signing a browser out: a cross-site POST
    carries no SameSite=Lax cookie, so whatever session its answer stored (a page's CSRF token
    is enough) would replace the real one in the browser, and the next sign-in link would then
    find no session to ask about. Nothing of a signed-out visitor needs keeping anyway.

    It runs outside the app's exception handlers, so a database that is away is answered here,
    by the app's own 503 (`on_unreachable`), not as an unexplained 500."""

    def __init__(self, app: ASGIApp, *, deps: Deps, on_unreachable: OnUnreachable) -> None:
        self.app = app
        self.deps = deps
        self.on_unreachable = on_unreachable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = scope.get("session") if scope["type"] == "http" else None
        if session and TENANT_KEY in session and not scope["path"].startswith(UNCHECKED_PREFIX):
            try:
                live = await live_tenant(self.deps, session)
            except DATABASE_UNREACHABLE as exc:
                response = await self.on_unreachable(Request(scope, receive), exc)
                await response(scope, receive, send)
                return
            if live is None:
                session.clear()
        if session is None:
            await self.app(scope, receive, send)
            return

        async def send_signed_in_only(message: Message) -> None:
            # The cookie is written when the answer starts (by the middleware outside this
            # one): an empty session then writes none.
            if message["type"] == "http.response.start" and session and TENANT_KEY not in session:
                session.clear()
            await send(message)

        await self.app(scope, receive, send_signed_in_only)
