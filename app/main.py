"""The one place routes, middleware, error handlers and lifespan are assembled.

`create_app(deps)` serves tests and the command line alike; `app_factory()` is what uvicorn
imports (`uvicorn --factory app.main:app_factory`) and reads settings from the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app import heap, openapi, settings
from app.analytics import routes as analytics_routes
from app.callbacks import routes as callback_routes
from app.composition import WEB_POOL_SIZE, build_deps, dispatch_config_of, run_background
from app.config.load import load_config
from app.db.deadlines import Deadlines, RequestDeadlines
from app.db.errors import DATABASE_UNREACHABLE, database_unreachable
from app.db.pool import close_database
from app.deps import Deps
from app.dispatch import routes as delivery_routes
from app.dispatch.policy import DispatchConfig
from app.encryption import routes as encryption_routes
from app.errors import ConflictError, InputError, NotFoundError, Unauthenticated
from app.incidents import routes as incident_routes
from app.ingest import routes as ingest_routes
from app.ingest.middleware import DropInSlashes, IngestFront
from app.ingest.routes import alerts as ingest_alerts
from app.installations import routes as installations_routes
from app.installations.upkeep import incidents_client
from app.observability.logs import lean_records
from app.oncall import routes as oncall_routes
from app.ops import routes as ops_routes
from app.tenants import pages as tenant_pages
from app.tenants import routes as tenants_routes
from app.tenants.middleware import SessionRecords
from app.tenants.ratelimit import IngestRateLimited
from app.tenants.sessions import SESSION_IDLE
from app.web.access_log import AccessLogMiddleware
from app.web.limits import RequestLimitsMiddleware
from app.web.protocol import LimitedHttpToolsProtocol, ServerLimits
from app.web.proxy import trusted_proxy_middleware
from app.web.render import STATIC_DIR, make_templates, render
from app.web.routing import Answers, answers_of
from app.web.security import SecurityHeadersMiddleware
from app.web.session import SESSION_COOKIE, SignedOut
from app.web.session_keys import RotatingSessionMiddleware
from app.webhooks import routes as webhook_routes

log = logging.getLogger("pdconnect")

# A restart or failover of PostgreSQL takes seconds; senders come back after this many.
DATABASE_RETRY_AFTER_SECONDS = 5
def _error(request: Request, status: int, message: str, field: str | None = None) -> Response:
    if answers_of(request.scope) is Answers.JSON:
        body: dict[str, Any] = {"message": message}
        if field:
            body["field"] = field
        return JSONResponse({"error": body}, status_code=status)
    return render(
        request,
        "message.html",
        {"heading": "Something is not right", "message": message},
        status_code=status,
    )


async def on_input_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InputError)
    return _error(request, exc.status, str(exc), exc.field or None)


async def on_conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConflictError)
    return _error(request, 409, str(exc), exc.field)


async def on_not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotFoundError)
    return _error(request, 404, str(exc))


async def on_unauthenticated(request: Request, exc: Exception) -> Response:
    response = _error(request, 401, "a valid Authorization: Bearer token is required")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def on_rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IngestRateLimited)
    response = _error(request, 429, str(exc))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def on_signed_out(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "message.html",
        {
            "heading": "Please sign in",
            "message": "Your session has ended. "
            "Open PagerDuty settings again from the product you came from.",
        },
        status_code=401,
    )


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, exc.detail)


async def on_server_error(request: Request, exc: Exception) -> Response:
    if database_unreachable(exc):
        # Raised where the handlers by class do not reach (a middleware outside them).
        return await on_database_unreachable(request, exc)
    # The traceback goes to the log (which never sees request bodies); the caller gets no detail.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(request, 500, "Internal error. It has been logged; please try again.")


async def on_database_unreachable(request: Request, exc: Exception) -> Response:
    """503 with Retry-After while PostgreSQL is away, frozen or broken (app/db/errors.py lists what
    counts). A 202 is sent only once its commit has returned, so nothing answered here was
    acknowledged, a commit whose outcome is unknown included, and the sender should retry (at
    worst repeating an event whose commit raced the outage, which PagerDuty deduplicates)."""
    if not database_unreachable(exc):
        return await on_server_error(request, exc)
    # One line, no traceback: the cause is outside this process, and every request of an
    # outage would print one.
    log.warning(
        "database unreachable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    response = _error(request, 503, "The database is unavailable; please retry shortly.")
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


class PdconnectApp(Starlette):
    """The app: an ingest request (a POST on an ingest path) goes to its own front door
    (app/ingest/middleware.py), every other request through the middleware stack."""

    front: IngestFront | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and front.takes(scope):
            scope["app"] = self
            await front.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    deps: Deps, *, owns_resources: bool = False, dispatch: DispatchConfig | None = None
) -> Starlette:
    """With `owns_resources`, the app connects the database on start-up and closes it and the
    HTTP client on shutdown; tests that manage their own leave it False. With `dispatch`, a
    dispatcher runs beside the web app in this process."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owns_resources:
            await deps.db.connect()
        stop = asyncio.Event()
        runner: asyncio.Task[None] | None = None
        if dispatch is not None and deps.config.database_url is not None:
            runner = asyncio.create_task(run_background(deps, dispatch, stop))
        # The listener that keeps the process's cache (app/db/changes.py) current.
        listener = None if deps.cache is None else asyncio.create_task(deps.cache.run(stop))
        try:
            yield
        finally:
            stop.set()
            if runner is not None:
                await runner
            if listener is not None:
                await listener
            if owns_resources:
                await deps.http.aclose()
                await close_database(deps.db)

    handlers: dict[Any, Any] = {
        InputError: on_input_error,
        ConflictError: on_conflict,
        NotFoundError: on_not_found,
        Unauthenticated: on_unauthenticated,
        IngestRateLimited: on_rate_limited,
        SignedOut: on_signed_out,
        HTTPException: on_http_exception,
        **dict.fromkeys(DATABASE_UNREACHABLE, on_database_unreachable),
        Exception: on_server_error,
    }
    routes: list[BaseRoute] = [
        *ops_routes.routes,
        *openapi.routes,
        *tenant_pages.routes,
        *settings.routes,
        *ingest_routes.routes,
        *delivery_routes.routes,
        *incident_routes.routes(incidents_client),
        *webhook_routes.routes,
        *tenants_routes.routes,
        *installations_routes.routes,
        *oncall_routes.routes,
        *encryption_routes.routes,
        *callback_routes.routes,
        *analytics_routes.routes,
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    limits = Deadlines(
        acquire=deps.config.db_acquire_timeout, statement=deps.config.db_statement_timeout
    )
    middleware = [
        # First, so that everything after sees the client's own address and scheme.
        *trusted_proxy_middleware(deps.config),
        # Every request's database work, whichever middleware or route does it.
        Middleware(RequestDeadlines, limits=limits),
        Middleware(AccessLogMiddleware),
        Middleware(DropInSlashes),
        Middleware(SecurityHeadersMiddleware, https=deps.config.https),
        Middleware(
            RotatingSessionMiddleware,
            secret_key=deps.config.secret_key,
            previous_keys=deps.config.secret_keys[1:],
            session_cookie=SESSION_COOKIE,
            max_age=int(SESSION_IDLE.total_seconds()),
            same_site="lax",
            https_only=deps.config.https,
        ),
        # Inside the session: its 413 and 431 pages are rendered like any other.
        Middleware(RequestLimitsMiddleware, reject=_error),
        # Inside the session and its limits: a signed-out or revoked session is emptied
        # before any route reads it.
        Middleware(SessionRecords, deps=deps, on_unreachable=on_database_unreachable),
    ]
    app = PdconnectApp(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=handlers,
    )
    app.front = IngestFront(
        routes=ingest_alerts.routes,
        handlers=handlers,
        reject=_error,
        https=deps.config.https,
        limits=limits,
        outer=trusted_proxy_middleware(deps.config),
    )
    app.state.deps = deps
    app.state.templates = make_templates(deps.config)
    # Starlette would answer `/settings/` with a redirect to an absolute URL built from the
    # request's Host header: a redirect anywhere, for whoever controls that header.
    app.router.redirect_slashes = False
    return app


def app_factory() -> Starlette:
    config = load_config()
    # Uvicorn applied the logging config in this process; what it cannot say is set here.
    lean_records()
    deps = build_deps(config, pool_size=WEB_POOL_SIZE)
    # Uvicorn calls this in each worker process before it takes connections: its protocol
    # (app/web/protocol.py) holds them to this process's config.
    LimitedHttpToolsProtocol.configure(ServerLimits.from_config(config))
    # `pdconnect serve` hands its web processes 0: it runs the dispatcher in a child process
    # (app/cli/worker_child.py). Set here, it runs in this process, as some tests want.
    run_dispatcher = os.environ.get("PDCONNECT_RUN_DISPATCHER", "1") != "0"
    app = create_app(
        deps,
        owns_resources=True,
        dispatch=dispatch_config_of(config) if run_dispatcher else None,
    )
    # Everything imported and built by now lives as long as the process (app/heap.py).
    heap.settle()
    return app
