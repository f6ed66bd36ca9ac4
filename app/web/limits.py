"""Limits on what one request may send, for every route: its headers, and its body by kind of
route.

Too many header fields, or too many bytes of them: 431. A body over its route's limit: 413,
at once when Content-Length announces it, else as soon as the streamed body grows past it (the
route's read raises HTTPException, which the app's handler answers in the same shape). The
answers are the app's own (`reject`): JSON on the APIs, a page in the browser.

The ingest routes are left out: each format has its own limit, read while streaming and
answered in that format's shape (app/ingest/endpoints.py). Uvicorn refuses request heads far
larger than these before they reach the app (app/web/protocol.py).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_HEADERS = 100
# Names and values together: room for a browser's cookies for the operator's whole domain.
MAX_HEADER_BYTES = 32 * 1024

# PagerDuty's v3 webhook deliveries are a few kilobytes: one incident event each.
WEBHOOK_MAX_BYTES = 256 * 1024
# Admin JSON (app/web/api.py reads at most as much) and the settings pages' forms (the largest,
# the service picker, sends up to 1000 PagerDuty service ids).
DEFAULT_MAX_BYTES = 64 * 1024
INGEST_PATHS = frozenset(
    {
        "/v1/alerts",
        "/v1/alerts/alertmanager",
        "/v2/enqueue",
        "/v2/change/enqueue",
        "/generic/2010-04-15/create_event.json",
    }
)
INGEST_KEY_PATH_PREFIX = "/k/"

Reject = Callable[[Request, int, str], Response]


def body_limit(path: str) -> int | None:
    """The most bytes of body a request to `path` may send; None where the route limits it."""
    if path in INGEST_PATHS or path.startswith(INGEST_KEY_PATH_PREFIX):
        return None
    if path.startswith("/pagerduty/webhooks/"):
        return WEBHOOK_MAX_BYTES
    return DEFAULT_MAX_BYTES


def header_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    if len(headers) > MAX_HEADERS:
        return f"a request may carry at most {MAX_HEADERS} header fields"
    if sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
        return f"a request's header fields may hold at most {MAX_HEADER_BYTES} bytes"
    return None


def too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    # The server refuses a malformed Content-Length before the app sees it.
    return int(value) if value is not None and value.isdigit() else None


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
            await self._limited(scope, receive, send)
        except ClientDisconnect:
            # The sender went away, or the server gave up on a body that did not arrive in
            # time (app/web/protocol.py) and has answered it: nothing is left to answer, and
            # nothing went wrong here that the log should show.
            return

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = body_limit(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > limit:
            await self.reject(Request(scope), 413, too_large(limit))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large(limit))
            return message

        await self.app(scope, limited_receive, send)
