from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from pdsandbox import SandboxState, create_sandbox_app, sandbox_state
from tests.sandbox.flow import BASE_URL, FakeClock, bearer, connect, sandbox_config


@pytest.fixture
def sandbox() -> Starlette:
    # Webhooks the sandbox sends (incidents change in some tests) land nowhere.
    webhooks = httpx2.MockTransport(lambda request: httpx2.Response(204))
    return create_sandbox_app(sandbox_config(), FakeClock(), webhook_transport=webhooks)


@pytest.fixture
def state(sandbox: Starlette) -> SandboxState:
    return sandbox_state(sandbox)


@pytest.fixture
async def client(sandbox: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=sandbox)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
async def token(client: httpx2.AsyncClient) -> str:
    """A `write` access token for acme-corp (US), as pdconnect holds after connecting."""
    access: str = (await connect(client))["access_token"]
    return access


class Api:
    """The sandbox's US REST API with one token, sending the headers the document lists."""

    def __init__(self, client: httpx2.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = bearer(token) | {"Content-Type": "application/json"}

    async def __call__(
        self, method: str, path: str, *, json: Any = None, **params: Any
    ) -> httpx2.Response:
        return await self.client.request(
            method, f"/us/api{path}", json=json, params=params, headers=self.headers
        )


@pytest.fixture
def api(client: httpx2.AsyncClient, token: str) -> Api:
    return Api(client, token)
