"""Browser sessions that can be ended: a server-side record per signed-in browser, checked on
every request.

Signing in opens a record and puts its random token in the (signed) cookie; signing out deletes
the record; an operator's "sign out everywhere" deletes all of a tenant's records and voids its
unused sign-in links; deleting a tenant deletes its records by cascade. `SessionRecords`, a
middleware inside the cookie's, empties the session of a request whose record is gone or
expired, so every page sees a signed-out browser ("Please sign in", never an error about a
tenant that no longer exists) and the answer clears the cookie.

Which keys sign the cookie is another matter (SECRET_KEY and its rotation): records are found
by the sha256 of their token, which no key enters, so rotating SECRET_KEY leaves them be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.crypto import random_token
from app.db.errors import DATABASE_UNREACHABLE
from app.deps import Deps
from app.tenants import session_store
from app.web.session import SESSION_MAX_AGE, TENANT_KEY, session_token, sign_in

# As long as the cookie's: a session unused for this long ends.
SESSION_IDLE = timedelta(seconds=SESSION_MAX_AGE)
# A session in use is renewed (one write) at most this often, not on every request.
RENEW_EVERY = timedelta(minutes=5)
# Static files read no session: a page's stylesheet costs no lookup.
UNCHECKED_PREFIX = "/static/"

OnUnreachable = Callable[[Request, Exception], Awaitable[Response]]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(deps: Deps, request: Request, tenant_id: UUID) -> None:
    """Sign this browser in to the tenant with a new record; the session it had before, if
    any, ends with it."""
    token = random_token()
    async with deps.db.transaction():
        await _end_record(deps, request.session)
        await session_store.insert_session(
            deps.db,
            token_hash=_hash(token),
            tenant_id=tenant_id,
            idle_seconds=SESSION_IDLE.total_seconds(),
        )
    sign_in(request, tenant_id, token)


async def end_session(deps: Deps, request: Request) -> None:
    """Sign this browser out: its record goes, so the cookie is worthless even if kept."""
    await _end_record(deps, request.session)
    request.session.clear()


async def _end_record(deps: Deps, session: dict[str, Any]) -> None:
    token = session_token(session)
    if token is not None:
        await session_store.delete_session(deps.db, token_hash=_hash(token))


async def end_tenant_sessions(deps: Deps, tenant_id: UUID) -> tuple[int, int]:
    """Sign every browser out of the tenant, and void its sign-in links not used yet (each is
    a session to come). Returns how many of each."""
    async with deps.db.transaction():
        sessions = await session_store.delete_tenant_sessions(deps.db, tenant_id)
        links = await session_store.void_unused_links(deps.db, tenant_id, now=deps.clock())
    return sessions, links


async def live_tenant(deps: Deps, session: dict[str, Any]) -> UUID | None:
    """The tenant this session is signed in to, if its record is live and agrees."""
    token = session_token(session)
    if token is None:
        return None
    tenant_id = await session_store.live_session_tenant(
        deps.db,
        token_hash=_hash(token),
        idle_seconds=SESSION_IDLE.total_seconds(),
        renew_every_seconds=RENEW_EVERY.total_seconds(),
    )
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
