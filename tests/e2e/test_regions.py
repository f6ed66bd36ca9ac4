"""Events reach the events host of their account's region, through the dispatcher: pasted keys
and Simple Install with the region the admin chose. The sandbox's hosts know only their own
region's keys (PagerDuty forwarding them is unconfirmed), so the wrong host is a 400."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.conftest import admin_headers
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher
from tests.e2e.test_settings_delivery import sign_in
from tests.live_sandbox import APP_ID

GLOBEX_USER = "PHANK01"  # of globex-eu, the sandbox's EU account


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def install(stack: Stack, install_url: str, service_index: int = 0) -> str:
    """What a globex-eu admin does on PagerDuty's install page: where it sends the browser."""
    globex = await stack.sandbox.account("globex-eu")
    form = query_of(install_url) | {"user": GLOBEX_USER, "action": "install"}
    answer = await stack.sandbox.http.post(
        install_url.split("?")[0],
        data={**form, "service": globex["services"][service_index]["id"]},
    )
    assert answer.status_code == 302, answer.text
    location: str = answer.headers["location"]
    return location


async def eu_key(stack: Stack) -> str:
    """A new Events API v2 key on a globex-eu service, made on the sandbox's install page."""
    params = {"app_id": APP_ID, "redirect_url": "http://127.0.0.1:9/unused", "version": "2"}
    location = await install(
        stack, f"{stack.sandbox.url}/app/install/integration?{urlencode(params)}"
    )
    config = json.loads(query_of(location)["config"])
    key: str = config["integration_keys"][0]["integration_key"]
    return key


async def add_key(stack: Stack, tenant: dict[str, Any], key: str, **extra: str) -> str:
    response = await stack.http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Billing", "routing_key": key, "api": "v2", **extra},
        headers=admin_headers(),
    )
    assert response.status_code == 201, response.text
    service_id: str = response.json()["id"]
    return service_id


async def page(stack: Stack, tenant: dict[str, Any], dedup_key: str) -> str:
    accepted = await stack.alert(tenant, {"dedup_key": dedup_key, "summary": "Invoices stuck"})
    assert accepted.status_code == 202, accepted.text
    event_id: str = accepted.json()["events"][0]["id"]
    return event_id


async def settled(stack: Stack, tenant: dict[str, Any], event_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await stack.event(tenant, event_id))["status"] in ("delivered", "held", "failed")

    await stack.wait_for(done)
    return await stack.event(tenant, event_id)


async def test_a_pasted_eu_key_is_sent_to_the_eu_host(stack: Stack) -> None:
    tenant = await stack.tenant("Globex")
    await add_key(stack, tenant, await eu_key(stack), region="eu")
    async with dispatcher(stack):
        event_id = await page(stack, tenant, "invoices")
        assert (await settled(stack, tenant, event_id))["status"] == "delivered"
    [arrival] = await stack.arrivals(dedup_key="invoices")
    assert (arrival["region"], arrival["status"]) == ("eu", 202)
    incidents = await stack.sandbox.http.get(
        f"{stack.sandbox.url}/_sandbox/incidents", params={"incident_key": "invoices"}
    )
    assert [i["status"] for i in incidents.json()["incidents"]] == ["triggered"]


async def test_a_pasted_key_is_us_by_default(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await add_key(stack, tenant, (await stack.v2_keys())[0])
    async with dispatcher(stack):
        event_id = await page(stack, tenant, "checkout")
        assert (await settled(stack, tenant, event_id))["status"] == "delivered"
    [arrival] = await stack.arrivals(dedup_key="checkout")
    assert (arrival["region"], arrival["status"]) == ("us", 202)


async def test_an_eu_key_pasted_as_us_is_refused_by_the_us_host(stack: Stack) -> None:
    """What every EU customer got before regions could be chosen: the sandbox, like PagerDuty
    for a key it does not know, answers 400, and the service shows why."""
    tenant = await stack.tenant("Globex")
    await add_key(stack, tenant, await eu_key(stack))
    async with dispatcher(stack):
        event_id = await page(stack, tenant, "invoices")
        assert (await settled(stack, tenant, event_id))["status"] == "held"
    arrivals = await stack.arrivals(dedup_key="invoices")
    assert arrivals  # tried, perhaps more than once, before the key was held
    assert {(a["region"], a["status"], *a["errors"]) for a in arrivals} == {
        ("us", 400, "Invalid routing key")
    }
    services = await stack.http.get(
        f"/admin/v1/tenants/{tenant['id']}/services", headers=admin_headers()
    )
    [service] = services.json()["services"]
    assert (service["region"], service["health"]) == ("us", "unhealthy")


async def test_simple_install_in_the_eu_sends_to_the_eu_host(stack: Stack) -> None:
    tenant = await stack.tenant("Globex")
    await sign_in(stack, tenant)
    started = await stack.http.get("/settings/connect/install", params={"region": "eu"})
    assert started.status_code == 302, started.text
    callback = urlsplit(await install(stack, started.headers["location"]))
    connected = await stack.http.get(f"{callback.path}?{callback.query}")
    assert connected.status_code == 303
    settings_page = (await stack.http.get("/settings")).text
    assert "Connected 1 integration key from PagerDuty account globex-eu" in settings_page

    async with dispatcher(stack):
        event_id = await page(stack, tenant, "invoices")
        assert (await settled(stack, tenant, event_id))["status"] == "delivered"
    [arrival] = await stack.arrivals(dedup_key="invoices")
    assert (arrival["region"], arrival["status"]) == ("eu", 202)
