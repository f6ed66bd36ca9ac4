"""The sandbox's "Send Test Event": a signed `pagey.ping` to one subscription, in PagerDuty's
shape, sent through the same queue, retries and disabling as every other delivery."""

from __future__ import annotations

import httpx2

from pdsandbox import SandboxState, WebhookSender
from tests.sandbox.events_flow import send, trigger, v2_key
from tests.sandbox.flow import bearer, connect
from tests.sandbox.webhook_flow import (
    HANG,
    Receiver,
    deliveries,
    service_of_key,
    settle,
    subscribe,
    verify,
)

PING_DATA = {"message": "Hello from your friend Pagey!", "type": "ping"}


async def ping(client: httpx2.AsyncClient, sub_id: str) -> httpx2.Response:
    return await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/ping")


async def test_a_ping_goes_to_that_subscription_alone_signed_and_in_pagerdutys_shape(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    # A subscription that asked only for resolves of one service still gets the test event;
    # another subscription of the account gets nothing.
    service = service_of_key(state, v2_key(state))
    sub_id, secret = await subscribe(
        client, acme_token, events=["incident.resolved"], service_id=service
    )
    await subscribe(client, acme_token, url="http://receiver.test/other")

    answer = await ping(client, sub_id)
    await settle(webhooks)

    assert answer.status_code == 202
    (got,) = receiver.received
    assert verify(got, secret)
    assert got.path == "/pagerduty/webhooks"
    assert got.headers["x-webhook-subscription"] == sub_id
    assert got.headers["user-agent"] == "PagerDuty-Webhook/V3.0"
    event = got.event
    assert event["id"] == answer.json()["event_id"]
    assert set(event) == {
        "id", "event_type", "resource_type", "occurred_at", "agent", "client", "data",
    }  # fmt: skip
    assert (event["event_type"], event["resource_type"]) == ("pagey.ping", "pagey")
    assert (event["agent"], event["client"]) == (None, None)
    assert event["data"] == PING_DATA  # no `id`: nothing in it is an incident
    (logged,) = await deliveries(client, event_type="pagey.ping")
    assert (logged["id"], logged["state"], logged["last_status"]) == (
        got.webhook_id, "delivered", 200,
    )  # fmt: skip
    assert (logged["resource_id"], logged["incident"]) == (None, None)


async def test_a_ping_to_no_such_subscription_is_404(client: httpx2.AsyncClient) -> None:
    answer = await ping(client, "PNOSUCH")
    assert answer.status_code == 404


async def test_a_ping_is_retried_with_the_same_webhook_id(
    client: httpx2.AsyncClient, acme_token: str, receiver: Receiver, webhooks: WebhookSender
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    receiver.answers.extend([503, HANG])

    await ping(client, sub_id)
    await settle(webhooks)

    assert len(receiver.received) == 3
    assert len({r.webhook_id for r in receiver.received}) == 1
    (logged,) = await deliveries(client)
    assert (logged["state"], logged["attempts"]) == ("delivered", 3)


async def test_three_pings_answered_2xx_keep_the_subscription_enabled(
    client: httpx2.AsyncClient, acme_token: str, receiver: Receiver, webhooks: WebhookSender
) -> None:
    sub_id, _ = await subscribe(client, acme_token)

    for _ in range(3):
        await ping(client, sub_id)
    await settle(webhooks)

    shown = await client.get(f"/us/api/webhook_subscriptions/{sub_id}", headers=bearer(acme_token))
    assert shown.json()["webhook_subscription"]["active"] is True
    assert [d["state"] for d in await deliveries(client)] == ["delivered"] * 3


async def test_three_pings_refused_disable_the_subscription_as_pagerduty_does(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    # What a receiver that answered a ping 400 cost its tenant: no incident events for a day.
    sub_id, _ = await subscribe(client, acme_token)
    receiver.answers.extend([400, 400, 400])

    for _ in range(3):
        await ping(client, sub_id)
    await settle(webhooks)
    await send(client, trigger(v2_key(state), "x"))
    await settle(webhooks)

    shown = await client.get(f"/us/api/webhook_subscriptions/{sub_id}", headers=bearer(acme_token))
    assert shown.json()["webhook_subscription"]["active"] is False
    assert receiver.event_types() == ["pagey.ping"] * 3
    assert [(d["event_type"], d["state"]) for d in await deliveries(client)] == [
        ("pagey.ping", "dropped"), ("pagey.ping", "dropped"), ("pagey.ping", "dropped"),
        ("incident.triggered", "dropped"),
    ]  # fmt: skip


async def test_pagerdutys_rest_ping_sends_the_same_test_event(
    client: httpx2.AsyncClient,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, secret = await subscribe(client, acme_token)
    # Another account's token does not see the subscription.
    initech = (await connect(client, user="PPETER1"))["access_token"]
    other = await client.post(
        f"/us/api/webhook_subscriptions/{sub_id}/ping", headers=bearer(initech)
    )
    assert other.status_code == 404
    answer = await client.post(
        f"/us/api/webhook_subscriptions/{sub_id}/ping", headers=bearer(acme_token)
    )
    await settle(webhooks)
    assert answer.status_code == 202
    (got,) = receiver.received
    assert verify(got, secret)
    assert got.event["event_type"] == "pagey.ping"
