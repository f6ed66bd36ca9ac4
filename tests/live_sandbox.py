"""A live PagerDuty sandbox on loopback, reached over real HTTP.

The sandbox runs in a uvicorn server on a free port, one per test (so its state is fresh),
with its clock tied to the test's clock: codes and tokens expire when the test says so, and
id_tokens are issued at the time the product believes it is.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import uvicorn

from pdsandbox import SandboxApp, SandboxConfig, SandboxState, create_sandbox_app, sandbox_state
from tests.conftest import BASE_URL, FakeClock

CLIENT_ID = "pdconnect-test"
CLIENT_SECRET = "pdconnect-test-secret-0123456789"
APP_ID = "PTESTAP"


def app_settings(sandbox_url: str) -> dict[str, str]:
    """The settings that make the sandbox at `sandbox_url` pdconnect's PagerDuty: its app (the
    one `running_sandbox` registers) and its hosts."""
    return {
        "PAGERDUTY_CLIENT_ID": CLIENT_ID,
        "PAGERDUTY_CLIENT_SECRET": CLIENT_SECRET,
        "PAGERDUTY_APP_ID": APP_ID,
        "PAGERDUTY_IDENTITY_URL": f"{sandbox_url}/identity",
        "PAGERDUTY_API_URL": f"{sandbox_url}/{{region}}/api",
        "PAGERDUTY_EVENTS_URL": f"{sandbox_url}/{{region}}/events",
        "PAGERDUTY_APP_URL": f"{sandbox_url}/app",
    }


@dataclass
class Sandbox:
    url: str
    state: SandboxState
    http: httpx2.AsyncClient

    async def account(self, subdomain: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.url}/_sandbox/accounts/{subdomain}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def control(self, **settings: str) -> None:
        response = await self.http.post(f"{self.url}/_sandbox/control", json=settings)
        assert response.status_code == 200, response.text


@asynccontextmanager
async def running_sandbox(clock: Callable[[], float] | None) -> AsyncIterator[Sandbox]:
    """A sandbox on a free loopback port; `clock` None means real time."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    config = SandboxConfig(
        base_url=url,
        apps=(
            SandboxApp(
                CLIENT_ID, CLIENT_SECRET, (f"{BASE_URL}/pagerduty/callback",), app_id=APP_ID
            ),
        ),
    )
    app = create_sandbox_app(config, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [probe]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "sandbox did not start"
        await asyncio.sleep(0.01)
    try:
        async with httpx2.AsyncClient() as http:
            yield Sandbox(url=url, state=sandbox_state(app), http=http)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        probe.close()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[Sandbox]:
    async with running_sandbox(lambda: clock.now.timestamp()) as running:
        yield running
