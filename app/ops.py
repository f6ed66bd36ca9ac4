"""`/healthz` (the process answers) and `/readyz` (the database answers and is migrated)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.db import pending_migrations
from app.web.api import get_deps


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    deps = get_deps(request)
    try:
        pending = await pending_migrations(deps.db)
    except Exception:
        return JSONResponse(
            {"status": "unavailable", "reason": "database unreachable"}, status_code=503
        )
    if pending:
        return JSONResponse(
            {"status": "unavailable", "reason": f"{len(pending)} migrations pending"},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
