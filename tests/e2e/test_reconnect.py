"""An account whose app was revoked and whose integration was deleted in PagerDuty: its events
are held (not lost, not failed) and a reconnect delivers them."""

from __future__ import annotations

import re
from datetime import timedelta

from app.installations.upkeep import Upkeep
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher
from tests.installations.conftest import consent, follow_callback, signed_in, start_oauth


async def test_revoked_and_uninstalled_then_reconnected(stack: Stack) -> None:
    http, tenant = await signed_in(stack.deps)
    picker = (
        await follow_callback(http, await consent(stack.sandbox, await start_oauth(http)))
    ).headers["location"]
    page = (await http.get(picker)).text
    service = re.findall(r'data-service-id="([A-Z0-9]+)"', page)[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    await http.post(picker, data={"csrf_token": csrf.group(1), "service": [service]})
    account = await stack.sandbox.account("acme-corp")
    [ours] = [i for s in account["services"] for i in s["integrations"] if i["name"] == "pdconnect"]

    # The customer uninstalls: revokes the app and deletes the integration.
    await stack.sandbox.http.post(
        f"{stack.sandbox.url}/_sandbox/tokens/revoke", json={"subdomain": "acme-corp"}
    )
    await stack.sandbox.http.delete(
        f"{stack.sandbox.url}/_sandbox/accounts/acme-corp/services/{service}/integrations/{ours['id']}"
    )
    await stack.deps.db.execute("UPDATE installations SET next_check_at = now()")
    await Upkeep(stack.deps, period=timedelta(minutes=5)).once()
    assert "needs reconnect" in (await http.get("/settings")).text

    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    sent = await http.post(
        "/v1/alerts", json={"dedup_key": "after-uninstall", "summary": "s"}, headers=auth
    )
    event_id = sent.json()["events"][0]["id"]

    async def status() -> str:
        return str((await http.get(f"/v1/events/{event_id}", headers=auth)).json()["status"])

    async with dispatcher(stack):

        async def held() -> bool:
            return await status() == "held"

        await stack.wait_for(held)
        detail = (await http.get(f"/v1/events/{event_id}", headers=auth)).json()
        assert "Invalid routing key" in detail["last_error"]

        # Reconnecting creates the integration again and the held event goes out.
        await follow_callback(http, await consent(stack.sandbox, await start_oauth(http)))

        async def delivered() -> bool:
            return await status() == "delivered"

        await stack.wait_for(delivered)
    arrivals = await stack.arrivals(dedup_key="after-uninstall")
    # Refused three times (believed only then), held, and sent once the reconnect repaired it.
    assert [a["status"] for a in arrivals] == [400, 400, 400, 202]
    assert "needs reconnect" not in (await http.get("/settings")).text
