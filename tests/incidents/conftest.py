"""The product served by uvicorn on a loopback port (so the sandbox's webhooks reach it), the
sandbox on another in real time, a committed database, a tenant connected by OAuth with one
service, and a dispatcher delivering its events: what a deployment has, with the upkeep pass
left to the test to run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from databases import Database

from app.deps import Deps, new_http_client
from app.dispatch.worker import Dispatcher
from app.incidents.reconcile import Reconciler
from app.installations.upkeep import Upkeep, incidents_client
from app.main import create_app
from pdsandbox import SandboxApp, SandboxConfig, create_sandbox_app, sandbox_state
from tests.conftest import admin_headers, make_settings
from tests.dispatch.conftest import FAST, Running
from tests.live_sandbox import APP_ID, CLIENT_ID, CLIENT_SECRET, Sandbox, app_settings
from tests.webhooks.test_ping_live import _loopback, connect_by_oauth, serving

RECONCILE_AFTER = "1"


class Clock:
    """The reconciler's monotonic clock, moved by the test (a pause after a 429 ends when
    the test says)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Live:
    deps: Deps
    browser: httpx2.AsyncClient
    sandbox: Sandbox
    clock: Clock
    upkeep: Upkeep
    ingest_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ingest_key}"}

    async def sandbox_get(self, path: str, **params: str) -> Any:
        response = await self.sandbox.http.get(f"{self.sandbox.url}{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def sandbox_post(self, path: str, body: Any = None) -> httpx2.Response:
        return await self.sandbox.http.post(f"{self.sandbox.url}{path}", json=body)

    async def incident(self, dedup_key: str) -> dict[str, Any] | None:
        found = (await self.sandbox_get("/_sandbox/incidents", incident_key=dedup_key))["incidents"]
        return found[-1] if found else None

    async def page(self, dedup_key: str) -> dict[str, Any]:
        """Send an alert and wait until the sandbox has its incident."""
        sent = await self.browser.post(
            "/v1/alerts",
            json={"dedup_key": dedup_key, "summary": f"{dedup_key} is down", "source": "db1"},
            headers=self.auth,
        )
        assert sent.status_code == 202, sent.text

        async def opened() -> bool:
            return await self.incident(dedup_key) is not None

        await until(opened)
        incident = await self.incident(dedup_key)
        assert incident is not None
        event: dict[str, Any] = sent.json()["events"][0]
        return {"event": event, "incident": incident}

    async def event(self, event_id: str) -> dict[str, Any]:
        response = await self.browser.get(f"/v1/events/{event_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def subscription(self) -> dict[str, Any]:
        pd_id = await self.deps.db.fetch_val("SELECT pd_subscription_id FROM webhook_subscriptions")
        listed = await self.sandbox_get("/_sandbox/webhook_subscriptions")
        (found,) = [s for s in listed["webhook_subscriptions"] if s["id"] == pd_id]
        sub: dict[str, Any] = found
        return sub

    async def stale(self) -> None:
        """Let PDCONNECT_RECONCILE_AFTER pass (the database's clock decides staleness)."""
        await asyncio.sleep(float(RECONCILE_AFTER) + 0.2)


async def until(condition: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def live(cdb: Database, database_url: str) -> AsyncIterator[Live]:
    product_socket, product_url = _loopback()
    sandbox_socket, sandbox_url = _loopback()
    sandbox_app = create_sandbox_app(
        SandboxConfig(
            base_url=sandbox_url,
            apps=(
                SandboxApp(
                    CLIENT_ID, CLIENT_SECRET, (f"{product_url}/pagerduty/callback",), app_id=APP_ID
                ),
            ),
        )
    )
    settings = make_settings(
        BASE_URL=product_url,
        DATABASE_URL=database_url,
        **app_settings(sandbox_url),
        PDCONNECT_RECONCILE_AFTER=RECONCILE_AFTER,
    )
    product = create_app(
        Deps(config=settings, db=Database(database_url), http=new_http_client()),
        owns_resources=True,
    )
    http = new_http_client()
    deps = Deps(config=settings, db=cdb, http=http)
    clock = Clock()
    reconciler = Reconciler(
        deps,
        incidents_client,
        after=timedelta(seconds=settings.reconcile_after_seconds),
        monotonic=clock,
    )
    dispatcher = Dispatcher(
        db=cdb, http=http, vault=deps.vault, database_url=database_url, config=FAST
    )
    async with (
        serving(sandbox_app, sandbox_socket, lifespan="off"),
        serving(product, product_socket, lifespan="on"),
        httpx2.AsyncClient(trust_env=False) as sandbox_http,
        httpx2.AsyncClient(base_url=product_url, trust_env=False) as browser,
        Running(dispatcher),
    ):
        sandbox = Sandbox(url=sandbox_url, state=sandbox_state(sandbox_app), http=sandbox_http)
        await connect_by_oauth(browser, sandbox)
        tenant_id = await cdb.fetch_val("SELECT id FROM tenants")
        key = await browser.post(
            f"/admin/v1/tenants/{tenant_id}/ingest-keys", headers=admin_headers()
        )
        assert key.status_code == 201, key.text
        yield Live(
            deps=deps,
            browser=browser,
            sandbox=sandbox,
            clock=clock,
            upkeep=Upkeep(deps, period=timedelta(hours=1), reconciler=reconciler),
            ingest_key=key.json()["ingest_key"],
        )
    await http.aclose()
