"""Session cookies signed with SECRET_KEY, still accepted under the previous key for a while.

Starlette's SessionMiddleware signs with one key. During a SECRET_KEY rotation
(SECRET_KEY_PREVIOUS set) a cookie signed with the previous key must keep its tenant signed in,
and should carry the current key's signature from then on, so that removing the previous key
later signs out only the browsers that did not come back in the meantime. Everything else (the
cookie's name, flags, expiry, what a session holds) stays Starlette's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from itsdangerous import BadSignature, TimestampSigner
from starlette.middleware.sessions import Session, SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send


class RotatingSessionMiddleware(SessionMiddleware):
    def __init__(
        self,
        app: ASGIApp,
        secret_key: str,
        previous_keys: Sequence[str] = (),
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,  # Starlette's default
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
    ) -> None:
        super().__init__(
            app,
            secret_key,
            session_cookie=session_cookie,
            max_age=max_age,
            same_site=same_site,
            https_only=https_only,
        )
        self._previous = tuple(previous_keys)
        if self._previous:
            # Signs with the last key (the current one), accepts any of them.
            self._current = self.signer
            self.signer = TimestampSigner([*reversed(self._previous), secret_key])
            self.app = self._resign_previous(app)

    def _resign_previous(self, app: ASGIApp) -> ASGIApp:
        """Marks a session loaded from a cookie under the previous key as modified, which makes
        Starlette sign it again (under the current key) on this response."""

        async def inner(scope: Scope, receive: Receive, send: Send) -> None:
            session = scope.get("session")
            if isinstance(session, Session) and session and self._signed_before(scope):
                session.mark_modified()
            await app(scope, receive, send)

        return inner

    def _signed_before(self, scope: Scope) -> bool:
        cookie = HTTPConnection(scope).cookies.get(self.session_cookie)
        if cookie is None:
            return False
        try:
            self._current.unsign(cookie.encode("utf-8"), max_age=self.max_age)
        except BadSignature:
            return True
        return False
