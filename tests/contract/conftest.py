"""Contract tests: software nobody here wrote (PagerDuty's own Python clients, Prometheus
Alertmanager) sends through a running pdconnect, and the PagerDuty sandbox checks what came out.

pdconnect runs as deployed, in a Uvicorn server on a free 127.0.0.1 port with its dispatcher
beside it (`create_app(..., owns_resources=True, dispatch=...)`, the app `pdconnect serve`
runs), in a thread of its own with its own event loop and database pool, on the run's test
database; the sandbox is the e2e suite's (`tests/e2e/conftest.py`), in real time. What the
server commits is truncated when the test ends (`cdb`).
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from databases import Database

from app.cli.serve import REQUEST_DRAIN_SECONDS
from app.config.model import Config
from app.db.pool import open_database
from app.deps import Deps, new_http_client
from app.main import create_app
from app.web.protocol import CONCURRENCY_LIMIT, LimitedHttpToolsProtocol
from tests.conftest import admin_headers
from tests.contract.alertmanager import find_binary
from tests.contract.tls import LOOPBACK, TlsFiles, make_tls_files
from tests.dispatch.conftest import FAST
from tests.e2e.conftest import Stack, e2e_settings, live
from tests.live_sandbox import Sandbox

__all__ = ["e2e_settings", "live"]  # the e2e fixtures, shared with this package

START_SECONDS = 30.0
# Bounds every wait for something that happens in the background; never a speed assertion.
WAIT_SECONDS = 30.0


@dataclass
class Served:
    """A running pdconnect and the sandbox that is its PagerDuty."""

    url: str
    stack: Stack  # its `http` speaks to the running server over the loopback
    tls: TlsFiles | None

    @property
    def sandbox(self) -> Sandbox:
        return self.stack.sandbox

    async def tenant(self, name: str) -> dict[str, Any]:
        return await self.stack.tenant(name)

    async def sandbox_keys(self, count: int) -> list[str]:
        """`count` Events API v2 keys of distinct services of the sandbox's account."""
        keys = list(dict.fromkeys(await self.stack.v2_keys()))
        assert len(keys) >= count
        return keys[:count]

    async def connect_key(self, tenant: dict[str, Any], key: str, name: str) -> str:
        return await self.stack.connect_key(tenant, key, name)

    async def set_routes(self, tenant: dict[str, Any], routes: list[dict[str, Any]]) -> None:
        answer = await self.stack.http.put(
            f"/admin/v1/tenants/{tenant['id']}/routes",
            json={"routes": routes},
            headers=admin_headers(),
        )
        assert answer.status_code == 200, answer.text

    async def arrivals(self, routing_key: str) -> list[dict[str, Any]]:
        """Every Events API request the sandbox took for this key, in arrival order."""
        return await self.stack.arrivals(routing_key=routing_key)

    async def incidents(self, **filters: str) -> list[dict[str, Any]]:
        answer = await self.sandbox.http.get(
            f"{self.sandbox.url}/_sandbox/incidents", params=filters
        )
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["incidents"]
        return found

    async def wait_for(self, predicate: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not await predicate():
            assert time.monotonic() < deadline, f"{what}: not within {WAIT_SECONDS:g} s"
            await asyncio.sleep(0.1)


def _loopback_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    return sock


@asynccontextmanager
async def serving(settings: Config, tls: TlsFiles | None) -> AsyncIterator[str]:
    """pdconnect's web app and dispatcher in a Uvicorn server on a free loopback port; its URL."""
    assert settings.database_url is not None
    deps = Deps(config=settings, db=open_database(settings.database_url), http=new_http_client())
    app = create_app(deps, owns_resources=True, dispatch=FAST)
    sock = _loopback_socket()
    # The protocol and limits `pdconnect serve` runs with (app/cli/serve.py).
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        http=LimitedHttpToolsProtocol,
        limit_concurrency=CONCURRENCY_LIMIT,
        proxy_headers=False,
        access_log=False,
        timeout_graceful_shutdown=REQUEST_DRAIN_SECONDS,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    url = f"{scheme}://{LOOPBACK}:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while not server.started:
            assert thread.is_alive(), "pdconnect's server stopped during start-up"
            assert time.monotonic() < deadline, "pdconnect's server did not start"
            await asyncio.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, START_SECONDS)
        sock.close()
        assert not thread.is_alive(), "pdconnect's server did not stop"


@pytest.fixture(scope="session")
def tls_files() -> Iterator[TlsFiles]:
    with tempfile.TemporaryDirectory(prefix="pdc-tls-") as folder:
        yield make_tls_files(Path(folder))


@asynccontextmanager
async def served_stack(
    cdb: Database, live: Sandbox, settings: Config, database_url: str, tls: TlsFiles | None
) -> AsyncIterator[Served]:
    async with serving(settings, tls) as url:
        verify = tls.client_context() if tls else True
        async with httpx2.AsyncClient(base_url=url, verify=verify, timeout=10.0) as http:
            deps = Deps(config=settings, db=cdb, http=http)
            stack = Stack(deps=deps, http=http, sandbox=live, database_url=database_url)
            yield Served(url=url, stack=stack, tls=tls)


@pytest.fixture
async def served_https(
    cdb: Database, live: Sandbox, e2e_settings: Config, database_url: str, tls_files: TlsFiles
) -> AsyncIterator[Served]:
    """pdconnect over https, for PagerDuty's clients (python-pagerduty takes no other scheme)."""
    async with served_stack(cdb, live, e2e_settings, database_url, tls_files) as served:
        yield served


@pytest.fixture
async def served_http(
    cdb: Database, live: Sandbox, e2e_settings: Config, database_url: str
) -> AsyncIterator[Served]:
    """pdconnect over plain http on the loopback, as Alertmanager beside it would reach it."""
    async with served_stack(cdb, live, e2e_settings, database_url, None) as served:
        yield served


@pytest.fixture
def alertmanager_binary() -> str:
    """Debian's Alertmanager; asked for first, so a test without it stops before any server
    starts (a skip, or in CI a failure)."""
    return find_binary()
