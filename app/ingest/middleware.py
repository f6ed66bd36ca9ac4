"""Middleware of the ingest routes: a trailing slash on a drop-in path, and the ingest
endpoints' own way in (`IngestFastPath`), where a POST skips what only the pages need.

Ingest is the one part of the app that senders drive at thousands of requests a second, and
every layer a request passes costs it on the way in and again on the way out (each middleware
wraps `send`). The session middleware (signing and reading a cookie no sender has), the
session records and Starlette's router and exception middleware are for the pages and the
admin API; an ingest request needs none of them. `IngestFastPath` sits just inside the access
log and the database deadlines, takes `POST` on the ingest paths, and does there what the
layers it skips would have done for such a request:

- the head's limits (431, as `RequestLimitsMiddleware` answers them) and each route's body
  limit (413 from the route's own read, `BodyLimit`);
- a drop-in path with a trailing slash routed as the path without it (`DropInSlashes`);
- the security headers every answer carries (`SecurityHeadersMiddleware`);
- the exception handlers the app registers, looked up by the exception's class exactly as
  Starlette does, so every error is answered the same either way;
- a sender gone mid-body answered by nobody (`RequestLimitsMiddleware`).

Any other method on these paths (a 405), and every other path, goes the usual way. The
route table is the ingest routes' own declarations (`app.ingest.routes.alerts.routes`), so a
path is added in one place.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.limits import Reject, header_problem
from app.web.routing import ANSWERS_KEY, Answers, BodyLimit, DeclaredRoute, Endpoint
from app.web.security import api_headers

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


Handler = Callable[[Request, Exception], Awaitable[Response]]
KEY_PREFIX = "/k/"


class _Route:
    """One ingest endpoint as the fast path calls it: behind its body limit."""

    def __init__(self, endpoint: Endpoint, max_body: int) -> None:
        self.endpoint = endpoint
        self.name = endpoint.__name__
        self.limited = BodyLimit(self._call, max_body)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["pdconnect.response"] = await self.endpoint(Request(scope, receive))


class IngestFastPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[DeclaredRoute],
        handlers: Mapping[Any, Handler],
        reject: Reject,
        https: bool,
    ) -> None:
        self.app = app
        self.handlers = handlers
        self.reject = reject
        self.headers = api_headers(https=https)
        # The paths without the key prefix: the table of `/k/{ingest_key}/…` routes is the
        # same one with the key taken from the path.
        self.routes = {
            route.path: _Route(route.endpoint, route.max_body)
            for route in routes
            if "POST" in (route.methods or ()) and not route.path.startswith(KEY_PREFIX)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        found = self._route(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        route, key = found
        # What the router would have set: the access log's endpoint label, the answers'
        # shape, the key in the path.
        scope["endpoint"] = route.endpoint
        scope[ANSWERS_KEY] = Answers.JSON
        scope["path_params"] = {} if key is None else {"ingest_key": key}
        headers = self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        problem = header_problem(scope["headers"])
        if problem is not None:
            await self.reject(Request(scope), 431, problem)(scope, receive, send_with_headers)
            return
        try:
            response = await self._answer(route, scope, receive)
        except ClientDisconnect:
            return
        await response(scope, receive, send_with_headers)

    def _route(self, path: str) -> tuple[_Route, str | None] | None:
        key = None
        if path.startswith(KEY_PREFIX):
            end = path.find("/", len(KEY_PREFIX))
            if end <= len(KEY_PREFIX):
                return None
            key, path = path[len(KEY_PREFIX) : end], path[end:]
        route = self.routes.get(path)
        if route is None and path.endswith("/") and DROP_IN_PATHS.match(path):
            route = self.routes.get(path[:-1])
        return None if route is None else (route, key)

    async def _answer(self, route: _Route, scope: Scope, receive: Receive) -> Response:
        try:
            await route.limited(scope, receive, _no_send)
            response: Response = scope.pop("pdconnect.response")
            return response
        except ClientDisconnect:
            raise
        except Exception as exc:
            handler = self._handler_of(exc)
            if handler is None:
                raise
            return await handler(Request(scope, receive), exc)

    def _handler_of(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None


async def _no_send(message: Message) -> None:
    raise RuntimeError("an ingest endpoint answers by returning its response")
