"""The operator's API of a tenant's analytics and targets."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.analytics import store
from app.analytics.figures import analytics, analytics_json, targets_json
from app.analytics.targets import parse_targets, save_targets
from app.analytics.windows import parse_window
from app.tenants.auth import admin_tenant
from app.web.api import read_json_object
from app.web.routing import api


async def get_analytics(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    window = parse_window(request.query_params.get("window"))
    return JSONResponse(analytics_json(await analytics(deps.db, tenant.id, window)))


async def get_targets(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    return JSONResponse({"targets": targets_json(await store.targets(deps.db, tenant.id))})


async def put_targets(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    targets = parse_targets(await read_json_object(request))
    await save_targets(deps.db, tenant.id, targets, actor="operator")
    return JSONResponse({"targets": targets_json(await store.targets(deps.db, tenant.id))})


routes = [
    api("/admin/v1/tenants/{tenant_id}/analytics", get_analytics, methods=["GET"]),
    api("/admin/v1/tenants/{tenant_id}/analytics/targets", get_targets, methods=["GET"]),
    api("/admin/v1/tenants/{tenant_id}/analytics/targets", put_targets, methods=["PUT"]),
]
