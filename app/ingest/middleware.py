"""Middleware of the ingest routes."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

# PagerDuty takes its Events API paths with a trailing slash too, and some senders always add
# one (Sentry, the `pypd` client). Only these paths: elsewhere a slash stays a 404, so no
# redirect is ever built from the Host header.
DROP_IN_PATHS = re.compile(
    r"^(/k/[^/]+)?(/v2/enqueue|/v2/change/enqueue|/generic/2010-04-15/create_event\.json)/$"
)


class DropInSlashes:
    """Routes a drop-in path with a trailing slash as the path without it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and DROP_IN_PATHS.match(scope["path"]):
            scope = {**scope, "path": scope["path"][:-1]}
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.endswith(b"/"):
                scope["raw_path"] = raw[:-1]
        await self.app(scope, receive, send)
