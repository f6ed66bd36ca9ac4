from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette

from pdsandbox import (
    SandboxState,
    WebhookSender,
    create_sandbox_app,
    sandbox_state,
    sandbox_webhooks,
)
from tests.sandbox.flow import BASE_URL, FakeClock, connect, sandbox_config
from tests.sandbox.webhook_flow import Receiver


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver() -> Receiver:
    """Where the sandbox's webhooks go, whatever their URL."""
    return Receiver()


@pytest.fixture
def sandbox(clock: FakeClock, receiver: Receiver) -> Starlette:
    transport = httpx2.ASGITransport(app=receiver.app)
    return create_sandbox_app(sandbox_config(), clock, webhook_transport=transport)


@pytest.fixture
async def webhooks(sandbox: Starlette) -> AsyncIterator[WebhookSender]:
    sender = sandbox_webhooks(sandbox)
    yield sender
    await sender.aclose()  # nothing left retrying after the test


@pytest.fixture
def state(sandbox: Starlette) -> SandboxState:
    return sandbox_state(sandbox)


@pytest.fixture
async def client(sandbox: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=sandbox)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
async def acme_token(client: httpx2.AsyncClient) -> str:
    """An access token with `write` for Ada at acme-corp (US, 160 services)."""
    token: str = (await connect(client))["access_token"]
    return token
