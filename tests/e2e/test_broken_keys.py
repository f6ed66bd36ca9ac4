"""A key PagerDuty keeps rejecting: its events are held and its service shown unhealthy, until
the admin gives it a new key (the held events then go out, in order) or removes it."""

from __future__ import annotations

from typing import Any

from tests.conftest import admin_headers
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher
from tests.e2e.test_settings_delivery import sign_in

BOGUS = "0" * 32


async def held_service(stack: Stack) -> tuple[dict[str, Any], str, list[str]]:
    tenant = await stack.tenant("Acme")
    service = await stack.connect_key(tenant, BOGUS, "Pasted")
    ids = []
    for i in range(3):
        answer = await stack.alert(tenant, {"dedup_key": "same", "summary": f"#{i}"})
        ids.append(answer.json()["events"][0]["id"])
    async with dispatcher(stack):

        async def all_held() -> bool:
            states = [(await stack.event(tenant, i))["status"] for i in ids]
            return states == ["held"] * 3

        await stack.wait_for(all_held)
    return tenant, service, ids


async def test_rekey_sends_held_events_in_order(stack: Stack) -> None:
    tenant, service, ids = await held_service(stack)
    services = (
        await stack.http.get(f"/admin/v1/tenants/{tenant['id']}/services", headers=admin_headers())
    ).json()
    assert services["services"][0]["health"] == "unhealthy"
    assert "Invalid routing key" in services["services"][0]["health_reason"]
    await sign_in(stack, tenant)
    # A pasted key is repaired by pasting a new one, beside the service.
    assert (
        f'action="/settings/services/{service}/rekey"' in (await stack.http.get("/settings")).text
    )

    good = (await stack.v2_keys())[0]
    bad = await stack.http.put(
        f"/admin/v1/tenants/{tenant['id']}/services/{service}/routing-key",
        json={"routing_key": "short"},
        headers=admin_headers(),
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "routing_key"
    answer = await stack.http.put(
        f"/admin/v1/tenants/{tenant['id']}/services/{service}/routing-key",
        json={"routing_key": good},
        headers=admin_headers(),
    )
    assert answer.status_code == 200
    assert answer.json()["health"] == "healthy"
    assert good not in answer.text
    async with dispatcher(stack):

        async def delivered() -> bool:
            states = [(await stack.event(tenant, i))["status"] for i in ids]
            return states == ["delivered"] * 3

        await stack.wait_for(delivered)
    arrivals = [a for a in await stack.arrivals(routing_key=good) if a["status"] == 202]
    assert [a["summary"] for a in arrivals] == ["#0", "#1", "#2"]


async def test_removing_a_broken_service_cancels_its_held_events(stack: Stack) -> None:
    tenant, service, ids = await held_service(stack)
    csrf = await sign_in(stack, tenant)
    answer = await stack.http.post(
        f"/settings/services/{service}/remove", data={"csrf_token": csrf}
    )
    assert answer.status_code == 303
    page = (await stack.http.get("/settings")).text
    assert "Removed Pasted; 3 pending event(s) cancelled." in page
    activity = (await stack.http.get("/settings/activity")).text
    assert "removed the service Pasted (3 pending event(s) cancelled)." in activity
    for event_id in ids:
        event = await stack.event(tenant, event_id)
        assert event["status"] == "cancelled"
        assert "removed" in event["last_error"]
    assert await stack.count("SELECT count(*) FROM pd_services") == 0
