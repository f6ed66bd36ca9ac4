"""The ingest endpoints' own front door (`IngestFront`), and a trailing slash on a drop-in
path (`DropInSlashes`).

Ingest is the one part of the app that senders drive at thousands of requests a second, and
every layer a request passes costs it on the way in and again on the way out (each middleware
wraps `send`). Starlette's error middleware and router, the session middleware (signing and
reading a cookie no sender has), the session records and the request limits' wrapper are for the
pages and the admin API; an ingest request needs none of them. So the app (app/main.py) hands
a `POST` on an ingest path to `IngestFront` before its middleware stack, and the front does, in
one place, what the stack would have done for such a request:

- the trusted proxies' headers, when PDCONNECT_TRUSTED_PROXIES is set (app/web/proxy.py);
- the database deadlines of a web request (`RequestDeadlines`);
- the request id and the access line (app/web/access_log.py);
- the head's limits (431, as `RequestLimitsMiddleware` answers them) and each route's body
  limit (413 from the route's own read, `BodyLimit`);
- a drop-in path with a trailing slash routed as the path without it (`DropInSlashes`);
- the security headers every answer carries (`SecurityHeadersMiddleware`);
- the exception handlers the app registers, looked up by the exception's class exactly as
  Starlette does (`Exception`'s among them, so an error is a 500 in the app's shape and
  logged, as the error middleware would), so every error is answered the same either way;
- a sender gone mid-body answered by nobody (`RequestLimitsMiddleware`).

The answer is sent as the two messages Starlette's `Response` would send, its headers built in
one list. Any other method on these paths (a 405), and every other path, goes the usual way.
The route table is the ingest routes' own declarations (`app.ingest.routes.alerts.routes`), so
a path is added in one place.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.deadlines import Deadlines, deadlines
from app.observability.logs import bound
from app.web.access_log import log_request, request_id_of, with_request_id
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
# Where `IngestFront.takes` leaves the route it found for the request.
ROUTE_KEY = "pdconnect.ingest_route"


class _Route:
    """One ingest endpoint as the front calls it: behind its body limit."""

    def __init__(self, endpoint: Endpoint, max_body: int) -> None:
        self.endpoint = endpoint
        self.name = endpoint.__name__
        self.limited = BodyLimit(self._call, max_body)

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["pdconnect.response"] = await self.endpoint(Request(scope, receive))


class IngestFront:
    def __init__(
        self,
        *,
        routes: Sequence[DeclaredRoute],
        handlers: Mapping[Any, Handler],
        reject: Reject,
        https: bool,
        limits: Deadlines,
        outer: Sequence[Middleware] = (),
    ) -> None:
        self.handlers = handlers
        self.reject = reject
        self.headers = api_headers(https=https)
        self.limits = limits
        # The paths without the key prefix: the table of `/k/{ingest_key}/…` routes is the
        # same one with the key taken from the path.
        self.routes = {
            route.path: _Route(route.endpoint, route.max_body)
            for route in routes
            if "POST" in (route.methods or ()) and not route.path.startswith(KEY_PREFIX)
        }
        # What takes a request first: the trusted proxies' middleware when there is one.
        app: ASGIApp = self._serve
        for cls, args, kwargs in reversed(outer):
            app = cls(app, *args, **kwargs)
        self.app = app

    def takes(self, scope: Scope) -> bool:
        """Whether this request is the front's (a POST on an ingest path); if so, its route is
        kept in the scope for `app`, which no outer layer (the proxies') changes the path for."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        found = self._route(scope["path"])
        if found is None:
            return False
        scope[ROUTE_KEY] = found
        return True

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, key = scope.pop(ROUTE_KEY)
        started = time.perf_counter()
        status = 500
        # What the router would have set: the access log's endpoint label, the answers'
        # shape, the key in the path.
        scope["endpoint"] = route.endpoint
        scope[ANSWERS_KEY] = Answers.JSON
        scope["path_params"] = {} if key is None else {"ingest_key": key}
        request_id = request_id_of(scope)
        with bound(request_id=request_id), deadlines(self.limits):
            try:
                problem = header_problem(scope["headers"])
                if problem is not None:
                    response = self.reject(Request(scope), 431, problem)
                else:
                    try:
                        response = await self._answer(route, scope, receive)
                    except ClientDisconnect:
                        return
                status = response.status_code
                headers = with_request_id([*response.raw_headers, *self.headers], request_id)
                if type(response).__call__ is Response.__call__ and response.background is None:
                    # What `Response.__call__` sends, without a wrapper per layer around `send`.
                    await send(
                        {"type": "http.response.start", "status": status, "headers": headers}
                    )
                    await send({"type": "http.response.body", "body": response.body})
                else:
                    response.raw_headers[:] = headers
                    await response(scope, receive, send)
            finally:
                log_request(scope, status, started)

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
