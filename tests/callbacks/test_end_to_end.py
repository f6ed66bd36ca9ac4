"""End to end over real HTTP: the product served by uvicorn with its background work (the
dispatcher and the callbacks' sender), the sandbox on another port, a tenant connected by
OAuth, and a receiver standing for the vendor's product. An alert pages; acknowledging its
incident in the sandbox reaches the receiver as a signed `incident.acknowledged`; while the
receiver answers 500 the incident's next changes wait, and arrive in order once it recovers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from databases import Database
from standardwebhooks.webhooks import Webhook

from app.deps import Deps, new_http_client
from app.dispatch.policy import DispatchConfig
from app.main import create_app
from pdsandbox import SandboxApp, SandboxConfig, create_sandbox_app, sandbox_state
from tests.callbacks.conftest import Receiver, body_of, until
from tests.callbacks.support import new_whsec
from tests.conftest import admin_headers, make_settings
from tests.installations.conftest import consent
from tests.installations.test_lifecycle import csrf_of
from tests.live_sandbox import APP_ID, CLIENT_ID, CLIENT_SECRET, Sandbox, app_settings
from tests.webhooks.test_ping_live import _loopback, serving


async def connect(browser: httpx2.AsyncClient, sandbox: Sandbox) -> dict[str, Any]:
    """A new tenant signs in, connects acme-corp by OAuth and picks one service."""
    created = await browser.post(
        "/admin/v1/tenants", json={"name": "Acme", "external_id": "cus_42"}, headers=admin_headers()
    )
    tenant: dict[str, Any] = created.json()
    link = await browser.post(
        f"/admin/v1/tenants/{tenant['id']}/login-links", headers=admin_headers()
    )
    assert (await browser.get(link.json()["url"])).status_code == 303
    authorize = await browser.get("/pagerduty/connect?method=oauth")
    callback = await browser.get(await consent(sandbox, authorize.headers["location"]))
    picker = callback.headers["location"]
    page = (await browser.get(picker)).text
    service = re.findall(r'data-service-id="([A-Z0-9]+)"', page)[0]
    saved = await browser.post(picker, data={"csrf_token": csrf_of(page), "service": [service]})
    assert saved.status_code == 303, saved.text
    return tenant


async def test_an_incident_acknowledged_in_pagerduty_reaches_the_vendor_signed_and_in_order(
    cdb: Database, database_url: str, receivers: Callable[[], Awaitable[Receiver]]
) -> None:
    receiver = await receivers()
    failing = False
    receiver.status = lambda _: 500 if failing else 200
    secret = new_whsec()
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
        PDCONNECT_CALLBACK_URL=receiver.url,
        PDCONNECT_CALLBACK_SECRET=secret,
        # "For a minute" of failures, at test speed: the same backoff, in tenths of a second.
        PDCONNECT_CALLBACK_RETRY_BASE_SECONDS="0.05",
        PDCONNECT_CALLBACK_RETRY_CAP_SECONDS="0.3",
    )
    product_deps = Deps(config=settings, db=Database(database_url), http=new_http_client())
    product = create_app(product_deps, owns_resources=True, dispatch=DispatchConfig())

    try:
        async with (
            serving(sandbox_app, sandbox_socket, lifespan="off"),
            serving(product, product_socket, lifespan="on"),
            httpx2.AsyncClient(trust_env=False) as sandbox_http,
            httpx2.AsyncClient(base_url=product_url, trust_env=False) as browser,
        ):
            sandbox = Sandbox(url=sandbox_url, state=sandbox_state(sandbox_app), http=sandbox_http)
            tenant = await connect(browser, sandbox)
            paged = await browser.post(
                "/v1/alerts",
                json={"dedup_key": "disk-db1", "summary": "Disk almost full on db1"},
                headers={"Authorization": f"Bearer {tenant['ingest_key']}"},
            )
            assert paged.status_code == 202, paged.text
            event_id = paged.json()["events"][0]["id"]

            async def types() -> list[str]:
                return [body_of(a)["type"] for a in receiver.delivered()]

            async def triggered() -> bool:
                return await types() == ["incident.triggered"]

            await until(triggered)
            incidents = await sandbox_http.get(
                f"{sandbox_url}/_sandbox/incidents", params={"incident_key": "disk-db1"}
            )
            (incident,) = incidents.json()["incidents"]
            act = f"{sandbox_url}/_sandbox/incidents/{incident['id']}"
            assert (await sandbox_http.post(f"{act}/acknowledge")).status_code == 200

            async def acknowledged() -> bool:
                return await types() == ["incident.triggered", "incident.acknowledged"]

            await until(acknowledged)

            # The receiver fails; the incident moves on meanwhile.
            failing = True
            assert (await sandbox_http.post(f"{act}/reassign")).status_code == 200
            assert (await sandbox_http.post(f"{act}/resolve")).status_code == 200

            async def refused_a_few() -> bool:
                return sum(a.status == 500 for a in receiver.arrivals) >= 5

            await until(refused_a_few)
            failing = False

            async def all_four() -> bool:
                return len(receiver.delivered()) == 4

            await until(all_four)
    finally:
        await cdb.execute("DELETE FROM callback_defaults")

    delivered = receiver.delivered()
    verified = [Webhook(secret).verify(a.body, a.headers) for a in delivered]
    assert [v["type"] for v in verified] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.reassigned",
        "incident.resolved",
    ]
    refused = {a.headers["webhook-id"] for a in receiver.arrivals if a.status == 500}
    assert refused == {delivered[2].headers["webhook-id"]}, "only the head was tried"
    acknowledged_data = verified[1]["data"]
    assert acknowledged_data["tenant"] == {"id": tenant["id"], "external_id": "cus_42"}
    assert acknowledged_data["alert"]["dedup_key"] == "disk-db1"
    assert acknowledged_data["alert"]["event_ids"] == [event_id]
    assert acknowledged_data["incident"]["id"] == incident["id"]
    assert acknowledged_data["incident"]["number"] == incident["incident_number"]
    assert acknowledged_data["incident"]["status"] == "acknowledged"
    assert acknowledged_data["incident"]["urgency"] == incident["urgency"]
    assert acknowledged_data["incident"]["url"].startswith("http")
    assert acknowledged_data["incident"]["assignees"], "who it is assigned to"
    assert acknowledged_data["agent"]["name"], "who acknowledged it"
    assert verified[3]["data"]["incident"]["status"] == "resolved"
