"""PagerDuty's "Send Test Event", end to end over real HTTP: the product served by uvicorn on
a loopback port (its own database pool, as `pdconnect serve` has), the sandbox on another, a
tenant connected by OAuth, and the sandbox's ping control sending signed `pagey.ping`s through
its real webhook sender (retries, drop counting, disabling) to the product's receiver."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx2
import uvicorn
from databases import Database
from starlette.types import ASGIApp

from app.deps import Deps, new_http_client
from app.main import create_app
from pdsandbox import SandboxApp, SandboxConfig, create_sandbox_app, sandbox_state
from tests.conftest import admin_headers, make_settings
from tests.installations.conftest import consent
from tests.installations.test_lifecycle import csrf_of
from tests.live_sandbox import APP_ID, CLIENT_ID, CLIENT_SECRET, Sandbox, app_settings

PINGS = 3  # as many drops in a row as disable a subscription for a day


def _loopback() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serving(
    app: ASGIApp, sock: socket.socket, *, lifespan: Literal["on", "off"]
) -> AsyncIterator[None]:
    """`app` on the bound socket, in a uvicorn thread with its own event loop."""
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "server failed to start"  # e.g. its lifespan raised
        assert time.monotonic() < deadline, "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll: what it waits for happens in the servers' threads, with no event to wait on."""
    deadline = time.monotonic() + 15
    while not await condition():
        assert time.monotonic() < deadline, "not within 15 s"
        await asyncio.sleep(0.05)


async def connect_by_oauth(browser: httpx2.AsyncClient, sandbox: Sandbox) -> None:
    """A new tenant signs in, connects acme-corp and picks one service."""
    tenant = await browser.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    link = await browser.post(
        f"/admin/v1/tenants/{tenant.json()['id']}/login-links", headers=admin_headers()
    )
    assert (await browser.get(link.json()["url"])).status_code == 303
    authorize = await browser.get("/pagerduty/connect?method=oauth")
    assert authorize.status_code == 302, authorize.text
    callback = await browser.get(await consent(sandbox, authorize.headers["location"]))
    picker = callback.headers["location"]
    page = (await browser.get(picker)).text
    service = re.findall(r'data-service-id="([A-Z0-9]+)"', page)[0]
    saved = await browser.post(picker, data={"csrf_token": csrf_of(page), "service": [service]})
    assert saved.status_code == 303, saved.text


async def test_pings_from_send_test_event_are_answered_2xx_and_keep_the_subscription(
    cdb: Database, database_url: str
) -> None:
    product_socket, product_url = _loopback()
    sandbox_socket, sandbox_url = _loopback()
    sandbox_app = create_sandbox_app(
        SandboxConfig(
            base_url=sandbox_url,
            apps=(
                SandboxApp(
                    CLIENT_ID,
                    CLIENT_SECRET,
                    (f"{product_url}/pagerduty/callback",),
                    app_id=APP_ID,
                ),
            ),
        )
    )
    settings = make_settings(
        BASE_URL=product_url,  # the webhook subscriptions' URLs: where the pings go
        DATABASE_URL=database_url,
        **app_settings(sandbox_url),
    )
    # Its own pool, opened by its lifespan on the loop that serves it.
    product_deps = Deps(config=settings, db=Database(database_url), http=new_http_client())
    product = create_app(product_deps, owns_resources=True)

    async with (
        serving(sandbox_app, sandbox_socket, lifespan="off"),
        serving(product, product_socket, lifespan="on"),
        httpx2.AsyncClient(trust_env=False) as sandbox_http,
        httpx2.AsyncClient(base_url=product_url, trust_env=False) as browser,
    ):
        sandbox = Sandbox(url=sandbox_url, state=sandbox_state(sandbox_app), http=sandbox_http)
        await connect_by_oauth(browser, sandbox)
        pd_subscription = await cdb.fetch_val(
            "SELECT pd_subscription_id FROM webhook_subscriptions"
        )

        pinged = [
            await sandbox_http.post(
                f"{sandbox_url}/_sandbox/webhook_subscriptions/{pd_subscription}/ping"
            )
            for _ in range(PINGS)
        ]

        async def pings() -> list[dict[str, Any]]:
            response = await sandbox_http.get(
                f"{sandbox_url}/_sandbox/webhooks/deliveries",
                params={"subscription": pd_subscription, "event_type": "pagey.ping"},
            )
            found: list[dict[str, Any]] = response.json()
            return found

        async def all_finished() -> bool:
            return [p["finished_at"] is not None for p in await pings()] == [True] * PINGS

        await until(all_finished)
        sent = await pings()
        listed = await sandbox_http.get(f"{sandbox_url}/_sandbox/webhook_subscriptions")

    assert [p.status_code for p in pinged] == [202] * PINGS
    assert [(d["state"], d["attempts"], d["last_status"]) for d in sent] == [
        ("delivered", 1, 200)
    ] * PINGS
    (subscription,) = listed.json()["webhook_subscriptions"]
    assert (subscription["id"], subscription["active"]) == (pd_subscription, True)
    rows = await cdb.fetch_all("SELECT webhook_id, event_type FROM webhook_deliveries")
    assert sorted((r._mapping["webhook_id"], r._mapping["event_type"]) for r in rows) == sorted(
        (d["id"], "pagey.ping") for d in sent
    )
