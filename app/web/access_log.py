"""One log line per request, without secrets.

Uvicorn's own access log prints the whole request line, which would put sign-in tokens (in the
query string) and ingest keys (in `/k/<key>/…` paths) into the log. This one logs the path with
no query string and with any key in the path replaced.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("pdconnect.access")
KEY_IN_PATH = re.compile(r"^/k/[^/]+")


def loggable_path(path: str) -> str:
    return KEY_IN_PATH.sub("/k/[redacted]", path)


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_remember)
        finally:
            log.info(
                "%s %s %d %.1fms",
                scope["method"],
                loggable_path(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
            )
