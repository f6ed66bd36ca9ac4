"""A real `pdconnect serve` on loopback for the API fuzz tests, and the tenants it is fuzzed
with.

A subprocess rather than the app in this process: schemathesis calls the API synchronously,
and the `databases` pool must stay on the event loop that opened it. The server runs against
the run's test database without a dispatcher, so nothing is ever sent anywhere; what it stores
is committed, and truncated when the server stops.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx2
from databases import Database

from app.config.load import load_config
from app.config.model import Config
from app.crypto import ROUTING_KEY_SALT, Hasher, Vault, new_fernet_key
from app.db.pool import asyncpg_dsn
from app.installations import store
from app.installations.store import PdService
from tests.conftest import ADMIN_TOKEN
from tests.ports import free_port

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
# Config a developer's shell may hold that must not reach the server under test.
_FOREIGN_SETTINGS = (
    "PAGERDUTY_",
    "DATABASE_URL",
    "BASE_URL",
    "SECRET_KEY",
    "ENCRYPTION_KEYS",
    "ADMIN_TOKEN",
    "PDCONNECT_",
)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pdconnect serve exited with status {process.returncode}")
        try:
            if httpx2.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"pdconnect serve did not become ready at {url}")


def _truncate(database_url: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await conn.execute("TRUNCATE tenants, dispatch_keys CASCADE")
        finally:
            await conn.close()

    asyncio.run(run())


@dataclass(frozen=True)
class Server:
    url: str
    settings: Config


@contextmanager
def serving(database_url: str) -> Iterator[Server]:
    """`pdconnect serve` on a free loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_SETTINGS)}
    ours = {
        "DATABASE_URL": database_url,
        "BASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ENCRYPTION_KEYS": new_fernet_key(),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PAGERDUTY_CLIENT_ID": "fuzz-client",
        "PAGERDUTY_CLIENT_SECRET": secrets.token_urlsafe(24),
        "PAGERDUTY_APP_ID": "PFUZZAP",
        "PDCONNECT_RUN_DISPATCHER": "0",
        # Whether a request is throttled depends on timing; the run must not.
        "PDCONNECT_INGEST_RATE_LIMIT": "0",
    }
    with tempfile.TemporaryDirectory(prefix="pdc-fuzz-") as folder:
        ours["PDCONNECT_DATA_DIR"] = folder
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, **ours},
            cwd=folder,
        )
        try:
            _wait_until_ready(url, process)
            yield Server(url=url, settings=load_config(environ=ours, env_file=None))
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _truncate(database_url)


async def connect_service(db: Database, settings: Config, tenant_id: UUID) -> PdService:
    """A PagerDuty service connected as Simple Install connects one: unlike a pasted key, it
    is known to be a service, so change events may go to it too."""
    installation = await store.upsert_keyed_installation(
        db,
        tenant_id=tenant_id,
        method="simple_install",
        account_key="acme-corp",
        subdomain="acme-corp",
        account_name="Acme Corp",
        region="us",
        events_url="https://events.pagerduty.test",
    )
    key = routing_key()
    return await store.upsert_pd_service(
        db,
        tenant_id=tenant_id,
        installation_id=installation.id,
        pd_service_id="PCHECK1",
        name="Checkout",
        kind="service",
        integration_id="PINTEG1",
        created_by_us=False,
        routing_key_enc=Vault(settings.encryption_keys).encrypt(key),
        routing_key_hash=Hasher(settings.secret_key, ROUTING_KEY_SALT).digest(key),
    )


def routing_key() -> str:
    """A fresh PagerDuty-shaped routing key (32 letters and digits)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


@dataclass
class Admin:
    """The admin API of a running server, to set up what the fuzzer works on."""

    http: httpx2.Client

    def _json(self, method: str, path: str, expect: int, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(
            method, path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, **kwargs
        )
        assert response.status_code == expect, response.text
        body: dict[str, Any] = response.json()
        return body

    def tenant(self, name: str) -> dict[str, Any]:
        return self._json("POST", "/admin/v1/tenants", 201, json={"name": name})

    def service(self, tenant_id: str, name: str) -> dict[str, Any]:
        return self._json(
            "POST",
            f"/admin/v1/tenants/{tenant_id}/services",
            201,
            json={"name": name, "routing_key": routing_key(), "api": "v2"},
        )

    def services(self, tenant_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json(
            "GET", f"/admin/v1/tenants/{tenant_id}/services", 200
        )["services"]
        return found

    def ingest_key(self, tenant_id: str) -> dict[str, Any]:
        return self._json("POST", f"/admin/v1/tenants/{tenant_id}/ingest-keys", 201)

    def window(self, tenant_id: str) -> dict[str, Any]:
        return self._json(
            "POST",
            f"/admin/v1/tenants/{tenant_id}/maintenance-windows",
            201,
            json={"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T02:00:00Z"},
        )

    def windows(self, tenant_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json(
            "GET", f"/admin/v1/tenants/{tenant_id}/maintenance-windows", 200
        )["maintenance_windows"]
        return found


def send_alert(http: httpx2.Client, ingest_key: str) -> str:
    """Queue one alert; returns its event id."""
    response = http.post(
        "/v1/alerts",
        json={"summary": "fuzz fixture alert", "dedup_key": "fuzz-fixture"},
        headers={"Authorization": f"Bearer {ingest_key}"},
    )
    assert response.status_code == 202, response.text
    event_id: str = response.json()["events"][0]["id"]
    return event_id
