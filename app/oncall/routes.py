"""Who is on call, as JSON: `GET /admin/v1/tenants/{id}/oncall` (admin token) for the operator,
and `GET /v1/oncall` (the tenant's ingest key) for the vendor's product to show its customer
who will be paged."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.oncall.view import AccountOnCall, OnCallUser, ServiceOnCall, tenant_oncall
from app.tenants.auth import admin_tenant, request_tenant
from app.web.api import get_deps
from app.web.routing import api


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def user_json(user: OnCallUser) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "name": user.name,
        "email": user.email,
        "level": user.level,
        "since": _iso(user.since),
        "until": _iso(user.until),
        "schedule": None
        if user.schedule_id is None
        else {"id": user.schedule_id, "name": user.schedule_name},
    }


def service_json(entry: ServiceOnCall) -> dict[str, Any]:
    return {
        "id": str(entry.service.id),
        "pd_service_id": entry.service.pd_service_id,
        "name": entry.service.name,
        "escalation_policy": None
        if entry.policy_id is None
        else {"id": entry.policy_id, "name": entry.policy_name},
        "on_call": [user_json(u) for u in entry.now],
        "levels": [
            {
                "level": level.level,
                "escalation_delay_in_minutes": level.delay_minutes,
                "targets": [{"type": t.type, "id": t.id, "name": t.name} for t in level.targets],
                "on_call": [user_json(u) for u in level.on_call],
            }
            for level in entry.levels
        ],
        "error": entry.error,
    }


def account_json(account: AccountOnCall) -> dict[str, Any]:
    installation = account.installation
    return {
        "installation_id": str(installation.id),
        "method": installation.method,
        "subdomain": installation.subdomain,
        "available": account.available,
        "unavailable_reason": account.unavailable_reason,
        "fetched_at": _iso(account.fetched_at),
        "stale": account.stale,
        "error": account.error,
        "services": [service_json(s) for s in account.services],
    }


async def _answer(request: Request, tenant_id: UUID) -> Response:
    accounts = await tenant_oncall(get_deps(request), tenant_id)
    return JSONResponse({"accounts": [account_json(a) for a in accounts]})


async def admin_oncall(request: Request) -> Response:
    _, tenant = await admin_tenant(request)
    return await _answer(request, tenant.id)


async def tenant_oncall_api(request: Request) -> Response:
    return await _answer(request, await request_tenant(request))


routes = [
    api("/admin/v1/tenants/{tenant_id}/oncall", admin_oncall, methods=["GET"]),
    api("/v1/oncall", tenant_oncall_api, methods=["GET"]),
]
