"""The admin API of a tenant's routing rules and severity table (app/ingest/rulebook.py
validates and saves them)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import InputError
from app.ingest import store
from app.ingest.alert import Alert
from app.ingest.native import parse_native
from app.ingest.rulebook import (
    parse_unmatched,
    preview,
    recent_alert,
    rule_json,
    save_rules,
    save_severity_map,
    save_unmatched,
)
from app.ingest.severity import parse_severity_map, severity_map_to_json
from app.ingest.templates import parse_shaping
from app.tenants.auth import admin_tenant
from app.web.api import read_json_object
from app.web.routing import api


async def get_routes(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    rules = await store.list_rules(deps.db, tenant_id)
    unmatched = await store.unmatched_policy(deps.db, tenant_id)
    return JSONResponse({"routes": [rule_json(r) for r in rules], "unmatched": unmatched})


async def put_routes(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    body = await read_json_object(request)
    routes = body.get("routes")
    if not isinstance(routes, list):
        raise InputError("routes", "must be a list of rules")
    unmatched = None if body.get("unmatched") is None else parse_unmatched(body["unmatched"])
    await save_rules(deps, tenant_id, routes, actor="operator")
    if unmatched is not None:
        await save_unmatched(deps, tenant_id, unmatched, actor="operator")
    rules = await store.list_rules(deps.db, tenant_id)
    unmatched = await store.unmatched_policy(deps.db, tenant_id)
    return JSONResponse({"routes": [rule_json(r) for r in rules], "unmatched": unmatched})


async def preview_templates(request: Request) -> Response:
    """`{"templates": {…}, "alert"?: native alert}`: the templates checked and rendered against
    the alert given, else the tenant's most recent one."""
    deps, tenant = await admin_tenant(request)
    body = await read_json_object(request)
    shaping = parse_shaping(body.get("templates"))
    alert: Alert | None
    if body.get("alert") is not None:
        try:
            parsed = parse_native(body["alert"])
        except InputError as exc:
            raise InputError(f"alert.{exc.field}".rstrip("."), exc.message) from exc
        alert = parsed[0] if parsed else None
    else:
        alert = await recent_alert(deps, tenant.id)
    if alert is None:
        return JSONResponse({"alert": None, "rendered": {}, "warnings": ["no recent alert"]})
    return JSONResponse(
        {
            "alert": {"summary": alert.summary, "labels": dict(alert.labels)},
            **preview(shaping, alert),
        }
    )


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
    # 100 rules, each with up to 20 conditions and its templates, exceed the default limit.
    api("/admin/v1/tenants/{tenant_id}/routes", put_routes, methods=["PUT"], max_body=1_048_576),
    api("/admin/v1/tenants/{tenant_id}/routes/preview", preview_templates, methods=["POST"]),
    api("/admin/v1/tenants/{tenant_id}/severity-map", get_severity_map, methods=["GET"]),
    api("/admin/v1/tenants/{tenant_id}/severity-map", put_severity_map, methods=["PUT"]),
]
