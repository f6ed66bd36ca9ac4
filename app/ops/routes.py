"""`/healthz` (the process answers), `/readyz` (the database answers and is migrated) and
`/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.crypto import same
from app.db.deadlines import Deadlines, deadlines
from app.db.errors import database_unreachable
from app.db.migrations import pending_migrations
from app.dispatch.log_store import outbox_snapshot
from app.errors import Unauthenticated
from app.observability.metrics import CONTENT_TYPE_LATEST, OutboxSnapshot, render
from app.web.api import get_deps
from app.web.routing import api

log = logging.getLogger("pdconnect.ops")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    deps = get_deps(request)
    limit = deps.config.readyz_timeout
    try:
        # A probe that hangs is a probe that fails late: answer within the limit, each step
        # under it (so a frozen database is dropped from the pool) and the whole too.
        with deadlines(Deadlines(acquire=limit, statement=limit)):
            async with asyncio.timeout(limit):
                pending = await pending_migrations(deps.db)
    except Exception as exc:
        # Whatever went wrong, this process cannot serve now; an error that is not an outage
        # is logged with its traceback.
        if database_unreachable(exc) or isinstance(exc, TimeoutError):
            log.warning("readyz: database unreachable: %s", type(exc).__name__)
        else:
            log.exception("readyz: the database check failed")
        return JSONResponse(
            {"status": "unavailable", "reason": "database unreachable"}, status_code=503
        )
    if pending:
        return JSONResponse(
            {"status": "unavailable", "reason": f"{len(pending)} migrations pending"},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    deps = get_deps(request)
    token = deps.config.metrics_token
    if token is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same(presented.strip(), token):
            raise Unauthenticated()
    snapshot: OutboxSnapshot | None
    try:
        by_status, oldest = await outbox_snapshot(deps.db)
        snapshot = OutboxSnapshot(by_status=by_status, oldest_due_age_seconds=oldest)
    except Exception as exc:
        # Metrics matter most while the database is in trouble: answer with what this process
        # knows, and say the outbox could not be read (pdconnect_database_up 0).
        log.warning("metrics could not read the outbox: %s", type(exc).__name__)
        snapshot = None
    return Response(render(snapshot), media_type=CONTENT_TYPE_LATEST)


routes = [
    api("/healthz", healthz, methods=["GET"]),
    api("/readyz", readyz, methods=["GET"]),
    api("/metrics", metrics, methods=["GET"]),
]
