"""The browser session: which tenant is signed in, and its CSRF token.

The session lives in a signed cookie (Starlette's SessionMiddleware: HttpOnly, SameSite=Lax,
Secure under https). It holds no secret of PagerDuty's; the PKCE verifier of a connect in
progress is the one thing of weight in it, and it is useless without the code PagerDuty sends
to our callback.

A signed cookie alone cannot be taken back, so a signed-in session also names a server-side
record by a random token (`SESSION_RECORD_KEY`); app/tenants/sessions.py checks it on every
request and empties the session whose record is gone. This module knows only the cookie.
"""

from __future__ import annotations

from uuid import UUID

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.crypto import random_token, same

SESSION_COOKIE = "pdconnect_session"
CSRF_FIELD = "csrf_token"
TENANT_KEY = "tenant_id"
SESSION_RECORD_KEY = "sid"


class SignedOut(Exception):
    """No tenant is signed in on this browser."""


def sign_in(request: Request, tenant_id: UUID, session_token: str) -> None:
    # A new session, not an upgraded one: nothing from before the sign-in survives it.
    request.session.clear()
    request.session[TENANT_KEY] = str(tenant_id)
    request.session[SESSION_RECORD_KEY] = session_token
    request.session["csrf"] = random_token()


def session_token(session: dict[str, object]) -> str | None:
    """The token naming this session's server-side record, if it has one."""
    token = session.get(SESSION_RECORD_KEY)
    return token if isinstance(token, str) and token else None


def current_tenant_id(request: Request) -> UUID:
    value = request.session.get(TENANT_KEY)
    if not isinstance(value, str):
        raise SignedOut()
    try:
        return UUID(value)
    except ValueError as exc:
        raise SignedOut() from exc


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = random_token()
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, form: FormData) -> None:
    """Refuse a form post that does not carry this session's token."""
    expected = request.session.get("csrf")
    sent = form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not isinstance(sent, str) or not same(sent, expected):
        raise HTTPException(
            403, "The form expired or came from another site. Reload the page and try again."
        )
