"""Limits on the head of every request: too many header fields, or too many bytes of them,
are answered 431 by the app's own `reject` (JSON on the APIs, a page in the browser). Uvicorn
refuses heads far larger than these before they reach the app (app/web/protocol.py). Bodies
are limited by each route's declaration (app/web/routing.py)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_HEADERS = 100
# Names and values together: room for a browser's cookies for the operator's whole domain.
MAX_HEADER_BYTES = 32 * 1024

Reject = Callable[[Request, int, str], Response]


def header_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    if len(headers) > MAX_HEADERS:
        return f"a request may carry at most {MAX_HEADERS} header fields"
    if sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
        return f"a request's header fields may hold at most {MAX_HEADER_BYTES} bytes"
    return None


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, *, reject: Reject) -> None:
        self.app = app
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = header_problem(scope["headers"])
        if problem is not None:
            await self.reject(Request(scope), 431, problem)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            # The sender went away, or the server gave up on a body that did not arrive in
            # time (app/web/protocol.py) and has answered it: nothing is left to answer, and
            # nothing went wrong here that the log should show.
            return
