"""Admin API of the connection health check: `POST /admin/v1/tenants/{id}/health-check`
checks each of the tenant's PagerDuty accounts now and answers the reports; `GET` answers the
last ones (the scheduled check's, or the last button's or call's). Its routes are declared in
app/installations/routes.py, the domain's one HTTP module."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.installations import store
from app.installations.health_check import Report, check_connection, last_reports, worst_of
from app.tenants.auth import admin_tenant


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def report_json(report: Report) -> dict[str, Any]:
    installation = report.installation
    return {
        "installation_id": str(installation.id),
        "method": installation.method,
        "subdomain": installation.subdomain,
        "checked_at": _iso(report.checked_at),
        "trigger": report.trigger,
        "status": report.status,
        "not_checked": report.not_checked,
        "keys_probed_at": _iso(report.keys_probed_at),
        "lines": [line.as_json() for line in report.lines],
    }


def reports_json(reports: list[Report]) -> dict[str, Any]:
    return {
        "status": worst_of(reports) if reports else None,
        "accounts": [report_json(r) for r in reports],
    }


async def run_health_check(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    reports = [
        await check_connection(deps, installation, trigger="api")
        for installation in await store.list_installations(deps.db, tenant.id)
    ]
    return JSONResponse(reports_json(reports))


async def last_health_check(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    reports = await last_reports(deps, tenant.id)
    return JSONResponse(reports_json(list(reports.values())))

