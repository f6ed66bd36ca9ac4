"""End to end: our app in process, a committed database, the sandbox on loopback in real
time, and dispatchers in process or as `pdconnect worker` subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx2
import pytest
from databases import Database

from app.config.model import Config
from app.crypto import new_fernet_key
from app.deps import Deps, new_http_client
from app.main import create_app
from tests.conftest import ADMIN_TOKEN, BASE_URL, admin_headers, make_settings
from tests.live_sandbox import (
    CLIENT_ID,
    CLIENT_SECRET,
    Sandbox,
    app_settings,
    running_sandbox,
)


@pytest.fixture
async def live() -> AsyncIterator[Sandbox]:
    async with running_sandbox(None) as sandbox:
        yield sandbox


@pytest.fixture
def e2e_settings(live: Sandbox, database_url: str) -> Config:
    return make_settings(
        DATABASE_URL=database_url,
        ENCRYPTION_KEYS=new_fernet_key(),
        **app_settings(live.url),
        # These tests load delivery: their storms of batches would spend an ingest key's
        # budget, which counts events (tests/security covers that limit).
        PDCONNECT_INGEST_RATE_LIMIT="0",
    )


@dataclass
class Stack:
    deps: Deps
    http: httpx2.AsyncClient
    sandbox: Sandbox
    database_url: str

    async def tenant(self, name: str) -> dict[str, Any]:
        response = await self.http.post(
            "/admin/v1/tenants", json={"name": name}, headers=admin_headers()
        )
        assert response.status_code == 201
        tenant: dict[str, Any] = response.json()
        return tenant

    async def v2_keys(self, subdomain: str = "acme-corp") -> list[str]:
        account = await self.sandbox.account(subdomain)
        return [
            i["integration_key"]
            for s in account["services"]
            for i in s["integrations"]
            if i["type"] == "events_api_v2_inbound_integration"
        ]

    async def connect_key(
        self, tenant: dict[str, Any], key: str, name: str, *, limit: int | None = None
    ) -> str:
        response = await self.http.post(
            f"/admin/v1/tenants/{tenant['id']}/services",
            json={"name": name, "routing_key": key, "api": "v2"},
            headers=admin_headers(),
        )
        assert response.status_code == 201, response.text
        service_id: str = response.json()["id"]
        if limit is not None:
            await self.deps.db.execute(
                "UPDATE pd_services SET rate_limit_per_minute = :n WHERE id = CAST(:id AS uuid)",
                {"n": limit, "id": service_id},
            )
        return service_id

    async def alert(
        self, tenant: dict[str, Any], body: Any, path: str = "/v1/alerts"
    ) -> httpx2.Response:
        return await self.http.post(
            path, json=body, headers={"Authorization": f"Bearer {tenant['ingest_key']}"}
        )

    async def event(self, tenant: dict[str, Any], event_id: str) -> dict[str, Any]:
        response = await self.http.get(
            f"/v1/events/{event_id}", headers={"Authorization": f"Bearer {tenant['ingest_key']}"}
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    async def arrivals(self, **filters: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.sandbox.http.get(
                f"{self.sandbox.url}/_sandbox/events",
                params={**filters, "after_seq": str(after), "limit": "1000"},
            )
            events = page.json()["events"]
            found += events
            if len(events) < 1000:
                return found
            after = events[-1]["seq"]

    async def count(self, sql: str, **values: Any) -> int:
        return int(await self.deps.db.fetch_val(sql, values))

    async def wait_for(self, predicate: Callable[[], Any], within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await predicate():
                return
            await asyncio.sleep(0.1)
        raise AssertionError("condition not met in time")


@pytest.fixture
async def stack(
    cdb: Database, live: Sandbox, e2e_settings: Config, database_url: str
) -> AsyncIterator[Stack]:
    http_out = new_http_client()
    deps = Deps(config=e2e_settings, db=cdb, http=http_out)
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield Stack(deps=deps, http=http, sandbox=live, database_url=database_url)
    await http_out.aclose()


def worker_env(settings: Config, **extra: str) -> dict[str, str]:
    """The environment of a `pdconnect worker` that shares this test's database and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PDCONNECT_"))}
    env.update(
        {
            "DATABASE_URL": str(settings.database_url),
            "SECRET_KEY": settings.secret_key,
            "ENCRYPTION_KEYS": ",".join(k.decode() for k in settings.encryption_keys),
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "PAGERDUTY_CLIENT_ID": CLIENT_ID,
            "PAGERDUTY_CLIENT_SECRET": CLIENT_SECRET,
            "PDCONNECT_RETRY_BASE_SECONDS": "0.05",
            "PDCONNECT_RETRY_CAP_SECONDS": "0.5",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def workers() -> Iterator[Callable[[dict[str, str]], subprocess.Popen[bytes]]]:
    """Start `pdconnect worker` processes; whatever is still running at the end is stopped."""
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


__all__ = ["UUID"]
