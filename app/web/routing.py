"""Routes declare what they take and how they answer: `api(...)` for JSON, `page(...)` for
the browser, each with the most bytes of body it reads (`max_body`).

The limit is enforced as the body streams in: a body announced (Content-Length) or grown past
it raises InputError(413) from the route's own read, so the route's usual error handling
answers it in the route's own shape (the drop-ins in PagerDuty's, the APIs in JSON, the pages
as a page). Nothing is refused before the route runs: a route that checks its credentials
before reading its body (the ingest routes) still does. A route that never reads its body
never pays for it.

The declared kind also picks the shape of every error the app answers for the route: its 404s
and 405s, and a middleware's refusals before routing (431) too; a request whose path no route
takes is answered as a page when the client asks for HTML and in JSON otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InputError

# Admin JSON and the settings pages' forms (the largest, the service picker, sends up to 1000
# PagerDuty service ids).
DEFAULT_MAX_BYTES = 64 * 1024
ANSWERS_KEY = "pdconnect.answers"

Endpoint = Callable[[Request], Awaitable[Response]]


class Answers(enum.StrEnum):
    JSON = "json"
    HTML = "html"


def too_large(limit: int) -> str:
    return f"request body is larger than {limit} bytes"


def raw_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case, as ASGI names them), read from the raw
    headers: building a `Headers` for one header cost more than the lookup, on every ingest
    request."""
    for found, value in scope["headers"]:
        if found == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = raw_header(scope, b"content-length")
    # The server refuses a malformed Content-Length before the app sees it.
    return int(value) if value is not None and value.isdigit() else None


class BodyLimit:
    """Raises InputError(413) from `receive` once the body is announced or grown past
    `max_bytes`.

    Not Starlette's own `Route(max_body_size=…)`: it answers a plain-text 413 itself, before any
    handler of ours sees it, so a drop-in could not answer in PagerDuty's shape nor an API in
    JSON; and it refuses an announced size before the route runs, ahead of its credentials."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes
        announced = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if announced is not None and announced > limit:
                raise InputError("", too_large(limit), status=413)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise InputError("", too_large(limit), status=413)
            return message

        await self.app(scope, limited_receive, send)


class DeclaredRoute(Route):
    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        methods: Sequence[str],
        answers: Answers,
        max_body: int,
    ) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        self.answers = answers
        self.max_body = max_body
        self.app = BodyLimit(self.app, max_body)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Before the method check, so that a 405 is answered in the route's shape too.
        scope[ANSWERS_KEY] = self.answers
        await super().handle(scope, receive, send)


def api(
    path: str, endpoint: Endpoint, *, methods: Sequence[str], max_body: int = DEFAULT_MAX_BYTES
) -> DeclaredRoute:
    return DeclaredRoute(
        path, endpoint, methods=methods, answers=Answers.JSON, max_body=max_body
    )


def page(
    path: str, endpoint: Endpoint, *, methods: Sequence[str], max_body: int = DEFAULT_MAX_BYTES
) -> DeclaredRoute:
    return DeclaredRoute(
        path, endpoint, methods=methods, answers=Answers.HTML, max_body=max_body
    )


def answers_of(scope: Scope) -> Answers:
    """The route's declared answers; before routing (a middleware's refusal), those of the
    route the path would reach; for a path no route takes, what the client accepts."""
    declared = scope.get(ANSWERS_KEY)
    if isinstance(declared, Answers):
        return declared
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        if isinstance(route, DeclaredRoute) and route.matches(scope)[0] is not Match.NONE:
            return route.answers
    accept = Headers(scope=scope).get("accept", "")
    return Answers.HTML if "text/html" in accept else Answers.JSON
