"""The admin API of a tenant's maintenance windows (app/ingest/maintenance.py does the work)."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import NotFoundError
from app.ingest import maintenance
from app.ingest.windows import window_json
from app.tenants.auth import admin_tenant
from app.web.api import path_uuid, read_json_object
from app.web.routing import api

BASE = "/admin/v1/tenants/{tenant_id}/maintenance-windows"


def _window_id(request: Request) -> UUID:
    return path_uuid(request, "window_id", "maintenance window")


async def list_windows(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    now = deps.clock()
    windows = await maintenance.list_windows(deps, tenant.id)
    return JSONResponse({"maintenance_windows": [window_json(w, now) for w in windows]})


async def create_window(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    body = await read_json_object(request)
    window_id = await maintenance.create_window(deps, tenant.id, body, actor="operator")
    return await _answer(request, tenant.id, window_id, status=201)


async def get_window(request: Request) -> Response:
    _, tenant = await admin_tenant(request)
    return await _answer(request, tenant.id, _window_id(request))


async def change_window(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    window_id = _window_id(request)
    body = await read_json_object(request)
    merge = request.method == "PATCH"
    if not await maintenance.update_window(
        deps, tenant.id, window_id, body, actor="operator", merge=merge
    ):
        raise NotFoundError("maintenance window")
    return await _answer(request, tenant.id, window_id)


async def end_window(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    window_id = _window_id(request)
    if not await maintenance.end_window(deps, tenant.id, window_id, actor="operator"):
        raise NotFoundError("maintenance window")
    return await _answer(request, tenant.id, window_id)


async def delete_window(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    if not await maintenance.delete_window(deps, tenant.id, _window_id(request), actor="operator"):
        raise NotFoundError("maintenance window")
    return Response(status_code=204)


async def _answer(
    request: Request, tenant_id: UUID, window_id: UUID, status: int = 200
) -> Response:
    deps, _ = await admin_tenant(request)
    window = await maintenance.get_window(deps, tenant_id, window_id)
    if window is None:
        raise NotFoundError("maintenance window")
    return JSONResponse(window_json(window, deps.clock()), status_code=status)


routes = [
    api(BASE, list_windows, methods=["GET"]),
    api(BASE, create_window, methods=["POST"]),
    api(BASE + "/{window_id}", get_window, methods=["GET"]),
    api(BASE + "/{window_id}", change_window, methods=["PUT", "PATCH"]),
    api(BASE + "/{window_id}", delete_window, methods=["DELETE"]),
    api(BASE + "/{window_id}/end", end_window, methods=["POST"]),
]
