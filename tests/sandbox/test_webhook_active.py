"""A webhook subscription switched off by its owner (`updateWebhookSubscription` with
`active`) or disabled after failed deliveries (`temporarily_disabled`, ended by
`enableWebhookSubscription`): nothing is sent meanwhile, and each way back is the documented one."""

from __future__ import annotations

from typing import Any

import httpx2

from pdsandbox import SandboxState, WebhookSender
from tests.sandbox.events_flow import send, trigger, v2_key
from tests.sandbox.flow import GLOBEX_USER, bearer, connect
from tests.sandbox.webhook_flow import Receiver, settle, subscribe


async def _put(
    client: httpx2.AsyncClient, token: str, sub_id: str, changes: dict[str, Any]
) -> httpx2.Response:
    return await client.put(
        f"/us/api/webhook_subscriptions/{sub_id}",
        json={"webhook_subscription": changes},
        headers=bearer(token),
    )


async def _read(client: httpx2.AsyncClient, token: str, sub_id: str) -> dict[str, Any]:
    response = await client.get(f"/us/api/webhook_subscriptions/{sub_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    sub: dict[str, Any] = response.json()["webhook_subscription"]
    return sub


def _state_of(sub: dict[str, Any]) -> tuple[bool, bool]:
    return sub["active"], sub["delivery_method"]["temporarily_disabled"]


async def test_the_owner_switches_a_subscription_off_and_on(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, _ = await subscribe(client, acme_token)

    off = await _put(client, acme_token, sub_id, {"active": False})
    await send(client, trigger(v2_key(state), "while-off"))
    await settle(webhooks)
    on = await _put(client, acme_token, sub_id, {"active": True, "description": "back"})
    await send(client, trigger(v2_key(state), "while-on"))
    await settle(webhooks)

    assert off.status_code == 200, off.text
    assert _state_of(off.json()["webhook_subscription"]) == (False, False)
    assert _state_of(on.json()["webhook_subscription"]) == (True, False)
    assert on.json()["webhook_subscription"]["description"] == "back"
    assert on.json()["webhook_subscription"]["delivery_method"]["secret"] is None
    assert [e["data"]["incident_key"] for e in receiver.events()] == ["while-on"]


async def test_a_disabled_subscription_comes_back_only_through_enable(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/disable")
    disabled = await _read(client, acme_token, sub_id)

    put_active = await _put(client, acme_token, sub_id, {"active": True})
    await send(client, trigger(v2_key(state), "still-disabled"))
    await settle(webhooks)
    enabled = await client.post(
        f"/us/api/webhook_subscriptions/{sub_id}/enable", headers=bearer(acme_token)
    )
    await send(client, trigger(v2_key(state), "enabled"))
    await settle(webhooks)

    assert _state_of(disabled) == (False, True)
    assert _state_of(put_active.json()["webhook_subscription"]) == (False, True)
    assert enabled.status_code == 200, enabled.text
    assert _state_of(enabled.json()["webhook_subscription"]) == (True, False)
    assert [e["data"]["incident_key"] for e in receiver.events()] == ["enabled"]


async def test_the_disable_control_ends_after_its_time(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/disable", json={"seconds": 60})
    during = await _read(client, acme_token, sub_id)
    await client.post("/_sandbox/clock/advance", json={"seconds": 61})
    token = (await connect(client))["access_token"]
    after = await _read(client, token, sub_id)

    assert _state_of(during) == (False, True)
    assert _state_of(after) == (True, False)


async def test_bad_updates_are_refused_and_change_nothing(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    reader = (await connect(client, scope="read"))["access_token"]
    globex = (await connect(client, user=GLOBEX_USER))["access_token"]

    new_url = {"delivery_method": {"type": "http_delivery_method", "url": "http://x.example/"}}
    refused = [
        await _put(client, acme_token, sub_id, new_url),
        await _put(client, acme_token, sub_id, {"active": "yes"}),
        await _put(client, acme_token, sub_id, {"events": ["incident.exploded"]}),
        await _put(client, acme_token, sub_id, {"filter": {"type": "escalation_policy"}}),
    ]
    read_only = await _put(client, reader, sub_id, {"active": False})
    foreign = await client.put(
        f"/eu/api/webhook_subscriptions/{sub_id}",
        json={"webhook_subscription": {"active": False}},
        headers=bearer(globex),
    )
    foreign_enable = await client.post(
        f"/eu/api/webhook_subscriptions/{sub_id}/enable", headers=bearer(globex)
    )

    assert [r.status_code for r in refused] == [400] * 4
    assert all(r.json()["error"]["code"] == 2001 for r in refused)
    assert read_only.status_code == 403
    assert (foreign.status_code, foreign_enable.status_code) == (404, 404)
    assert _state_of(await _read(client, acme_token, sub_id)) == (True, False)
