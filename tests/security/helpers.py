"""Shared by the security tests: an app on given settings, and a tenant ready to send alerts."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from databases import Database

from app.deps import Deps
from app.main import create_app
from tests.conftest import BASE_URL, admin_headers, make_settings


@asynccontextmanager
async def app_client(
    deps: Deps,
    *,
    db: Database | None = None,
    **settings: str,
) -> AsyncIterator[httpx2.AsyncClient]:
    """The app on `deps` (or on another database) with these settings overridden."""
    app = create_app(
        Deps(
            config=make_settings(**settings),
            db=db or deps.db,
            http=deps.http,
            clock=deps.clock,
        )
    )
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def sending_tenant(http: httpx2.AsyncClient, name: str) -> dict[str, Any]:
    """A new tenant with one PagerDuty service connected by a manual key, so that its alerts
    are accepted; its JSON as the admin API returns it (with `ingest_key`)."""
    created = await http.post("/admin/v1/tenants", json={"name": name}, headers=admin_headers())
    assert created.status_code == 201, created.text
    tenant: dict[str, Any] = created.json()
    service = await http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Ops", "routing_key": secrets.token_hex(16), "api": "v2"},
        headers=admin_headers(),
    )
    assert service.status_code == 201, service.text
    return tenant


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
