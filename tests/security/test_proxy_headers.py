"""X-Forwarded-For and X-Forwarded-Proto count only from peers in PDCONNECT_TRUSTED_PROXIES."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.deps import Deps
from app.main import create_app
from tests.conftest import BASE_URL, make_settings

SPOOFED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


async def seen(request: Request) -> Response:
    """What every route of the app sees of its caller."""
    assert request.client is not None
    return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})


@asynccontextmanager
async def peer(deps: Deps, address: str, trusted: str = "") -> AsyncIterator[httpx2.AsyncClient]:
    settings = make_settings(PDCONNECT_TRUSTED_PROXIES=trusted)
    app = create_app(Deps(config=settings, db=deps.db, http=deps.http, clock=deps.clock))
    app.router.routes.append(Route("/_seen", seen))
    transport = httpx2.ASGITransport(app=app, client=(address, 40000))
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def test_with_no_trusted_proxy_forwarded_headers_change_nothing(deps: Deps) -> None:
    for address in ("127.0.0.1", "10.1.2.3"):
        async with peer(deps, address) as http:
            answer = (await http.get("/_seen", headers=SPOOFED)).json()
        assert answer == {"client": address, "scheme": "http"}


async def test_a_trusted_proxy_sets_client_and_scheme(deps: Deps) -> None:
    async with peer(deps, "10.1.2.3", trusted="10.0.0.0/8") as http:
        answer = (await http.get("/_seen", headers=SPOOFED)).json()
    assert answer == {"client": "203.0.113.9", "scheme": "https"}


async def test_an_untrusted_peer_is_not_believed_when_proxies_are_configured(
    deps: Deps,
) -> None:
    async with peer(deps, "192.0.2.50", trusted="10.0.0.0/8, 127.0.0.1") as http:
        answer = (await http.get("/_seen", headers=SPOOFED)).json()
    assert answer == {"client": "192.0.2.50", "scheme": "http"}


async def test_addresses_a_client_put_before_the_proxy_are_ignored(deps: Deps) -> None:
    # The proxy appends the address it saw; whatever the client wrote before it is its claim.
    chain = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https"}
    async with peer(deps, "10.1.2.3", trusted="10.0.0.0/8") as http:
        answer = (await http.get("/_seen", headers=chain)).json()
    assert answer["client"] == "203.0.113.9"
