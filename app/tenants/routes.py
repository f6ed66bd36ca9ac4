"""The operator's admin API for tenants: `/admin/v1/tenants…`, behind ADMIN_TOKEN."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import ConflictError, InputError, NotFoundError
from app.tenants import store
from app.tenants.auth import admin_tenant
from app.tenants.keys import issue_ingest_key
from app.tenants.links import issue_login_link
from app.tenants.sessions import end_tenant_sessions
from app.tenants.store import IngestKey, Tenant
from app.web.api import path_uuid, read_json_object, require_admin, string_field
from app.web.routing import api

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200
# As the tenants table's CHECKs allow.
NAME_MAX_LENGTH = 200
EXTERNAL_ID_MAX_LENGTH = 200


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": str(tenant.id),
        "name": tenant.name,
        "external_id": tenant.external_id,
        "created_at": tenant.created_at.isoformat(),
    }


def ingest_key_json(key: IngestKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


async def create_tenant(request: Request) -> Response:
    deps = require_admin(request)
    body = await read_json_object(request)
    name = string_field(body, "name", required=True, max_length=NAME_MAX_LENGTH)
    external_id = string_field(
        body, "external_id", required=False, max_length=EXTERNAL_ID_MAX_LENGTH
    )
    assert name is not None
    async with deps.db.transaction():
        tenant = await store.insert_tenant(deps.db, name=name, external_id=external_id)
        if tenant is None:
            raise ConflictError("external_id", "a tenant with this external_id exists")
        key, plaintext = await issue_ingest_key(deps.db, deps.ingest_key_hasher, tenant.id)
        await store.insert_audit(
            deps.db, tenant_id=tenant.id, actor="operator", action="tenant.created", detail={}
        )
    return JSONResponse(
        {**tenant_json(tenant), "ingest_key": plaintext, "ingest_key_id": str(key.id)},
        status_code=201,
    )


async def list_tenants(request: Request) -> Response:
    deps = require_admin(request)
    try:
        limit = int(request.query_params.get("limit", LIST_LIMIT_DEFAULT))
    except ValueError as exc:
        raise InputError("limit", "must be a whole number", status=400) from exc
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise InputError("limit", f"must be between 1 and {LIST_LIMIT_MAX}", status=400)
    after_raw = request.query_params.get("after")
    try:
        after = UUID(after_raw) if after_raw else None
    except ValueError as exc:
        raise InputError("after", "must be a tenant id", status=400) from exc
    tenants = await store.list_tenants(deps.db, limit=limit, after=after)
    next_after = str(tenants[-1].id) if len(tenants) == limit else None
    return JSONResponse({"tenants": [tenant_json(t) for t in tenants], "next_after": next_after})


async def get_tenant(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    keys = await store.list_ingest_keys(deps.db, tenant.id)
    return JSONResponse({**tenant_json(tenant), "ingest_keys": [ingest_key_json(k) for k in keys]})


async def create_login_link(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    link = await issue_login_link(
        deps.db,
        deps.link_signer,
        base_url=deps.config.base_url,
        tenant_id=tenant.id,
        now=deps.clock(),
    )
    return JSONResponse(
        {"url": link.url, "expires_at": link.expires_at.isoformat()}, status_code=201
    )


async def create_ingest_key(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    async with deps.db.transaction():
        key, plaintext = await issue_ingest_key(deps.db, deps.ingest_key_hasher, tenant.id)
        await store.insert_audit(
            deps.db,
            tenant_id=tenant.id,
            actor="operator",
            action="ingest_key.created",
            detail={"key_id": str(key.id), "prefix": key.prefix},
        )
    return JSONResponse({**ingest_key_json(key), "ingest_key": plaintext}, status_code=201)


async def list_ingest_keys(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    keys = await store.list_ingest_keys(deps.db, tenant.id)
    return JSONResponse({"ingest_keys": [ingest_key_json(k) for k in keys]})


async def revoke_ingest_key(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    key_id = path_uuid(request, "key_id", "ingest key")
    async with deps.db.transaction():
        key = await store.revoke_ingest_key(deps.db, tenant_id=tenant.id, key_id=key_id)
        if key is None:
            raise NotFoundError("ingest key")
        await store.insert_audit(
            deps.db,
            tenant_id=tenant.id,
            actor="operator",
            action="ingest_key.revoked",
            detail={"key_id": str(key.id), "prefix": key.prefix},
        )
    return JSONResponse(ingest_key_json(key))


async def revoke_sessions(request: Request) -> Response:
    """Sign out everywhere: every browser signed in to the tenant is signed out at its next
    request, and sign-in links not used yet stop working (a leaked one would open a new
    session right after)."""
    deps, tenant = await admin_tenant(request)
    async with deps.db.transaction():
        sessions, links = await end_tenant_sessions(deps, tenant.id)
        await store.insert_audit(
            deps.db,
            tenant_id=tenant.id,
            actor="operator",
            action="sessions.revoked",
            detail={"sessions": sessions, "login_links": links},
        )
    return Response(status_code=204)


routes = [
    api("/admin/v1/tenants", create_tenant, methods=["POST"]),
    api("/admin/v1/tenants", list_tenants, methods=["GET"]),
    api("/admin/v1/tenants/{tenant_id}", get_tenant, methods=["GET"]),
    api("/admin/v1/tenants/{tenant_id}/login-links", create_login_link, methods=["POST"]),
    api("/admin/v1/tenants/{tenant_id}/sessions/revoke", revoke_sessions, methods=["POST"]),
    api("/admin/v1/tenants/{tenant_id}/ingest-keys", create_ingest_key, methods=["POST"]),
    api("/admin/v1/tenants/{tenant_id}/ingest-keys", list_ingest_keys, methods=["GET"]),
    api(
        "/admin/v1/tenants/{tenant_id}/ingest-keys/{key_id}", revoke_ingest_key, methods=["DELETE"]
    ),
]
