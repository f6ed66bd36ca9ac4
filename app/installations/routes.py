"""Admin API for a tenant's services: add a manual key, list what is connected."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import NotFoundError
from app.installations import store
from app.installations.disconnect import disconnect
from app.installations.health_api import last_health_check, run_health_check
from app.installations.manual import add_manual_service, validate_manual_key
from app.installations.service_actions import rekey, remove, tenant_service
from app.installations.store import Installation, PdService
from app.tenants.auth import admin_tenant
from app.tenants.store import delete_tenant as delete_tenant_row
from app.web.api import path_uuid, read_json_object
from app.web.routing import api


def service_json(service: PdService, region: str) -> dict[str, Any]:
    """`region` is its installation's: the service region its events are sent to."""
    return {
        "id": str(service.id),
        "installation_id": str(service.installation_id),
        "region": region,
        "pd_service_id": service.pd_service_id,
        "name": service.name,
        "kind": service.kind,
        "api": service.api_version,
        "integration_id": service.integration_id,
        "rate_limit_per_minute": service.rate_limit_per_minute,
        "health": service.health,
        "health_reason": service.health_reason,
        "created_at": service.created_at.isoformat(),
    }


async def add_service(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    body = await read_json_object(request)
    key = validate_manual_key(
        body.get("name"),
        body.get("routing_key"),
        body.get("api"),
        body.get("region"),
        default_region=deps.config.pagerduty_region,
    )
    service = await add_manual_service(deps, tenant_id, key, actor="operator")
    return JSONResponse(service_json(service, key.region), status_code=201)


async def list_services(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    services = await store.list_services(deps.db, tenant_id)
    installations = await store.list_installations(deps.db, tenant_id)
    regions = {i.id: i.region for i in installations}
    # A service whose account was disconnected between the two reads is gone: leave it out.
    return JSONResponse(
        {
            "services": [
                service_json(s, regions[s.installation_id])
                for s in services
                if s.installation_id in regions
            ]
        }
    )


def installation_json(installation: Installation) -> dict[str, Any]:
    return {
        "id": str(installation.id),
        "method": installation.method,
        "account_id": installation.account_id,
        "subdomain": installation.subdomain,
        "region": installation.region,
        "status": installation.status,
        "status_reason": installation.status_reason,
        "created_at": installation.created_at.isoformat(),
    }


async def list_installations(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    installations = await store.list_installations(deps.db, tenant_id)
    return JSONResponse({"installations": [installation_json(i) for i in installations]})


async def delete_installation(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    installation = await store.get_installation(
        deps.db,
        tenant_id=tenant_id,
        installation_id=path_uuid(request, "installation_id", "installation"),
    )
    if installation is None:
        raise NotFoundError("installation")
    report = await disconnect(deps, installation, actor="operator")
    return JSONResponse(report.as_json())


async def rekey_service(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    service = await tenant_service(deps, tenant.id, path_uuid(request, "service_id", "service"))
    body = await read_json_object(request)
    await rekey(deps, service, body.get("routing_key"), actor="operator")
    rekeyed = await tenant_service(deps, tenant.id, service.id)
    installation = await store.get_installation(
        deps.db, tenant_id=tenant.id, installation_id=rekeyed.installation_id
    )
    if installation is None:  # disconnected meanwhile
        raise NotFoundError("service")
    return JSONResponse(service_json(rekeyed, installation.region))


async def remove_service(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    service = await tenant_service(deps, tenant.id, path_uuid(request, "service_id", "service"))
    cancelled = await remove(deps, service, actor="operator")
    return JSONResponse({"removed": str(service.id), "cancelled_events": cancelled})


async def delete_tenant(request: Request) -> Response:
    """A tenant leaves: each of its accounts is disconnected first (so nothing pdconnect made
    stays behind in the customer's PagerDuty), then everything of the tenant is deleted."""
    deps, tenant = await admin_tenant(request)
    for installation in await store.list_installations(deps.db, tenant.id):
        await disconnect(deps, installation, actor="operator")
    await delete_tenant_row(deps.db, tenant.id)
    return Response(status_code=204)


routes = [
    api("/admin/v1/tenants/{tenant_id}", delete_tenant, methods=["DELETE"]),
    api("/admin/v1/tenants/{tenant_id}/health-check", run_health_check, methods=["POST"]),
    api("/admin/v1/tenants/{tenant_id}/health-check", last_health_check, methods=["GET"]),
    api(
        "/admin/v1/tenants/{tenant_id}/services/{service_id}/routing-key",
        rekey_service,
        methods=["PUT"],
    ),
    api(
        "/admin/v1/tenants/{tenant_id}/services/{service_id}", remove_service, methods=["DELETE"]
    ),
    api("/admin/v1/tenants/{tenant_id}/installations", list_installations, methods=["GET"]),
    api(
        "/admin/v1/tenants/{tenant_id}/installations/{installation_id}",
        delete_installation,
        methods=["DELETE"],
    ),
    api("/admin/v1/tenants/{tenant_id}/services", add_service, methods=["POST"]),
    api("/admin/v1/tenants/{tenant_id}/services", list_services, methods=["GET"]),
]
