"""One log line per request, without secrets, and a request id to follow it by.

Uvicorn's own access log prints the whole request line, which would put sign-in tokens (in the
query string) and ingest keys (in `/k/<key>/…` paths) into the log. This one logs the path with
no query string and with any key in the path replaced.

Every request gets an id: the caller's `X-Request-Id` when it sent a well-formed one (so a
vendor's product can correlate its calls with our lines), a new one otherwise. It is echoed in
the answer and carried by every line logged while the request is handled.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ids import new_hex
from app.observability.logs import PRE_REDACTED, bound, redact
from app.observability.metrics import HTTP_REQUESTS
from app.web.routing import raw_header

log = logging.getLogger("pdconnect.access")
KEY_IN_PATH = re.compile(r"^/k/[^/]+")
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_RAW = REQUEST_ID_HEADER.encode()
# Short enough to read, restricted so a caller cannot forge log structure with it.
CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")


# A line is written per request, and most requests go to a few paths: each distinct path is
# redacted once (a bounded cache: paths are the caller's to choose), the line marked as done.
@functools.lru_cache(maxsize=1024)
def loggable_path(path: str) -> str:
    return redact(KEY_IN_PATH.sub("/k/[redacted]", path))


def request_id_of(scope: Scope) -> str:
    offered = raw_header(scope, _REQUEST_ID_RAW)
    if offered is not None and CALLER_REQUEST_ID.fullmatch(text := offered.decode("latin-1")):
        return text
    return new_hex(8)


def endpoint_name(scope: Scope) -> str:
    """Set by the router once a route matched: a bounded label, unlike the path."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return "unmatched"
    return str(getattr(endpoint, "__name__", type(endpoint).__name__))


_DONE = {PRE_REDACTED: True}


def with_request_id(
    headers: Iterable[tuple[bytes, bytes]], request_id: str
) -> list[tuple[bytes, bytes]]:
    """An answer's headers with the request's id as its one X-Request-Id."""
    return [
        *(h for h in headers if h[0] != _REQUEST_ID_RAW),
        (_REQUEST_ID_RAW, request_id.encode("latin-1")),
    ]


def log_request(scope: Scope, status: int, started: float) -> None:
    """The request's line and its count, once it has been answered (`started`: its
    `time.perf_counter()` when it came in)."""
    HTTP_REQUESTS.labels(endpoint_name(scope), str(status)).inc()
    log.info(
        "%s %s %d %.1fms",
        scope["method"],
        loggable_path(scope["path"]),
        status,
        (time.perf_counter() - started) * 1000,
        extra=_DONE,
    )


class AccessLogMiddleware:
    """The line and the id for every request the app's middleware stack serves (the ingest
    endpoints' front door, app/ingest/middleware.py, does the same for its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = request_id_of(scope)

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = with_request_id(message.get("headers", ()), request_id)
            await send(message)

        with bound(request_id=request_id):
            try:
                await self.app(scope, receive, send_and_remember)
            finally:
                log_request(scope, status, started)
