"""The admin API of a tenant's routing rules and severity table (app/ingest/rulebook.py
validates and saves them)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import InputError
from app.ingest import store
from app.ingest.rulebook import rule_json, save_rules, save_severity_map
from app.ingest.severity import parse_severity_map, severity_map_to_json
from app.tenants.auth import admin_tenant
from app.web.api import read_json_object
from app.web.routing import api


async def get_routes(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    rules = await store.list_rules(deps.db, tenant_id)
    return JSONResponse({"routes": [rule_json(r) for r in rules]})


async def put_routes(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    body = await read_json_object(request)
    routes = body.get("routes")
    if not isinstance(routes, list):
        raise InputError("routes", "must be a list of rules")
    await save_rules(deps, tenant_id, routes, actor="operator")
    rules = await store.list_rules(deps.db, tenant_id)
    return JSONResponse({"routes": [rule_json(r) for r in rules]})


async def get_severity_map(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    stored = parse_severity_map(await store.severity_map(deps.db, tenant_id))
    return JSONResponse(severity_map_to_json(stored))


async def put_severity_map(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    parsed = parse_severity_map(await read_json_object(request))
    await save_severity_map(deps, tenant_id, parsed, actor="operator")
    return JSONResponse(severity_map_to_json(parsed))


routes = [
    api("/admin/v1/tenants/{tenant_id}/routes", get_routes, methods=["GET"]),
    api("/admin/v1/tenants/{tenant_id}/routes", put_routes, methods=["PUT"]),
    api("/admin/v1/tenants/{tenant_id}/severity-map", get_severity_map, methods=["GET"]),
    api("/admin/v1/tenants/{tenant_id}/severity-map", put_severity_map, methods=["PUT"]),
]
