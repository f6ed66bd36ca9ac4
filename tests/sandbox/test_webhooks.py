"""v3 webhooks: PagerDuty's payload and headers, signatures, filters, retries and drops."""

from __future__ import annotations

import re

import httpx2

from pdsandbox import SandboxState, WebhookSender
from tests.sandbox.events_flow import follow_up, send, trigger, v2_key
from tests.sandbox.flow import ACME_USER, INITECH_USER, bearer, connect
from tests.sandbox.webhook_flow import (
    HANG,
    HOOK_URL,
    INCIDENT_DATA_KEYS,
    Receiver,
    deliveries,
    service_of_key,
    settle,
    subscribe,
    verify,
)

OCCURRED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_a_trigger_is_delivered_in_pagerdutys_shape_and_signed(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, secret = await subscribe(client, acme_token)
    key = v2_key(state)

    await send(client, trigger(key, "disk-1"))
    await settle(webhooks)

    (got,) = receiver.received
    assert verify(got, secret)
    assert not verify(got, secret[::-1])
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "PagerDuty-Webhook/V3.0"
    assert got.headers["x-webhook-subscription"] == sub_id
    event = got.event
    assert set(event) == {
        "id", "event_type", "resource_type", "occurred_at", "agent", "client", "data",
    }  # fmt: skip
    assert (event["event_type"], event["resource_type"]) == ("incident.triggered", "incident")
    assert OCCURRED_AT.match(event["occurred_at"])
    assert (event["agent"], event["client"]) == (None, None)  # the Events API, not a person
    data = event["data"]
    assert set(data) == INCIDENT_DATA_KEYS
    (incident,) = state.incidents.incidents.values()
    assert (data["id"], data["type"], data["number"]) == (incident.id, "incident", 1)
    assert (data["status"], data["incident_key"]) == ("triggered", "disk-1")
    assert (data["title"], data["urgency"]) == ("Disk full on db-1", "high")
    assert data["self"] == f"http://127.0.0.1:8900/us/api/incidents/{incident.id}"
    assert data["service"]["id"] == service_of_key(state, key)
    assert data["service"]["type"] == "service_reference"
    assert set(data["service"]) == {"id", "type", "summary", "self", "html_url"}
    assert data["escalation_policy"]["type"] == "escalation_policy_reference"
    assert [a["type"] for a in data["assignees"]] == ["user_reference"]
    (logged,) = await deliveries(client)
    assert logged["id"] == got.webhook_id
    assert (logged["state"], logged["attempts"], logged["last_status"]) == ("delivered", 1, 200)
    assert logged["incident"] == incident.id
    assert logged["payload"]["event"] == event


async def test_each_event_goes_to_subscriptions_that_want_it(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    key_a, key_b = v2_key(state, 0), v2_key(state, 1)
    service_a, service_b = service_of_key(state, key_a), service_of_key(state, key_b)
    await subscribe(client, acme_token, service_id=service_a, url=HOOK_URL + "/a")
    await subscribe(client, acme_token, service_id=service_b, url=HOOK_URL + "/b")
    await subscribe(
        client, acme_token, events=["incident.resolved"], url=HOOK_URL + "/account-resolved"
    )
    team = await client.post(
        "/us/api/webhook_subscriptions",
        json={
            "webhook_subscription": {
                "type": "webhook_subscription",
                "delivery_method": {"type": "http_delivery_method", "url": HOOK_URL + "/team"},
                "events": ["incident.triggered"],
                "filter": {"type": "team_reference", "id": "PTEAM01"},
            }
        },
        headers=bearer(acme_token),
    )
    initech = (await connect(client, user=INITECH_USER))["access_token"]
    await subscribe(client, initech, url=HOOK_URL + "/initech")

    await send(client, trigger(key_a, "x"))
    await send(client, follow_up(key_a, "resolve", "x"))
    await settle(webhooks)

    assert team.status_code == 200
    assert receiver.event_types("/pagerduty/webhooks/a") == [
        "incident.triggered", "incident.resolved",
    ]  # fmt: skip
    assert receiver.event_types("/pagerduty/webhooks/account-resolved") == ["incident.resolved"]
    assert receiver.event_types("/pagerduty/webhooks/b") == []
    assert receiver.event_types("/pagerduty/webhooks/team") == []
    assert receiver.event_types("/pagerduty/webhooks/initech") == []
    # One event, several deliveries: the event id is shared, the webhook ids are not.
    resolved = [r for r in receiver.received if r.event["event_type"] == "incident.resolved"]
    assert len({r.event["id"] for r in resolved}) == 1
    assert len({r.webhook_id for r in resolved}) == 2


async def test_5xx_429_and_timeouts_are_retried_with_the_same_webhook_id(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    _, secret = await subscribe(client, acme_token)
    receiver.answers.extend([500, 429, HANG])

    await send(client, trigger(v2_key(state), "x"))
    await settle(webhooks)

    assert len(receiver.received) == 4
    assert len({r.webhook_id for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    assert all(verify(r, secret) for r in receiver.received)
    (logged,) = await deliveries(client)
    assert (logged["state"], logged["attempts"], logged["last_status"]) == ("delivered", 4, 200)


async def test_a_4xx_is_dropped_without_a_retry(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    receiver.answers.append(403)

    await send(client, trigger(v2_key(state), "x"))
    await send(client, follow_up(v2_key(state), "acknowledge", "x"))
    await settle(webhooks)

    assert receiver.event_types() == ["incident.triggered", "incident.acknowledged"]
    dropped, delivered = await deliveries(client)
    assert (dropped["state"], dropped["attempts"], dropped["last_status"]) == ("dropped", 1, 403)
    assert delivered["state"] == "delivered"


async def test_retries_end_after_the_last_attempt_and_the_delivery_is_dropped(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    receiver.answers.extend([503] * 4)

    await send(client, trigger(v2_key(state), "x"))
    await settle(webhooks)

    (logged,) = await deliveries(client, state="dropped")
    assert (logged["attempts"], logged["last_status"]) == (4, 503)
    assert len(receiver.received) == 4


async def test_three_drops_in_a_row_disable_the_subscription_until_enabled(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    receiver.answers.extend([404, 410, 400])
    key = v2_key(state)
    path = f"/us/api/webhook_subscriptions/{sub_id}"

    for dedup_key in ("a", "b", "c", "d"):
        await send(client, trigger(key, dedup_key))
    await settle(webhooks)
    shown = (await client.get(path, headers=bearer(acme_token))).json()["webhook_subscription"]
    await send(client, trigger(key, "e"))
    await settle(webhooks)
    enabled = await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/enable")
    await send(client, trigger(key, "f"))
    await settle(webhooks)

    assert len(receiver.received) == 4  # three drops, then only "f"
    assert receiver.events()[-1]["data"]["incident_key"] == "f"
    assert shown["active"] is False
    assert shown["delivery_method"]["temporarily_disabled"] is True
    assert [(d["state"], d["attempts"]) for d in await deliveries(client)] == [
        ("dropped", 1), ("dropped", 1), ("dropped", 1),
        ("dropped", 0), ("dropped", 0), ("delivered", 1),
    ]  # fmt: skip
    assert enabled.json()["active"] is True
    after = (await client.get(path, headers=bearer(acme_token))).json()["webhook_subscription"]
    assert after["active"] is True


async def test_a_disable_lasts_24_hours_of_the_sandbox_clock(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    receiver.answers.extend([400, 400, 400])
    key = v2_key(state)
    for dedup_key in ("a", "b", "c"):
        await send(client, trigger(key, dedup_key))
    await settle(webhooks)

    await client.post("/_sandbox/clock/advance", json={"seconds": 86400})
    await send(client, trigger(key, "d"))
    await settle(webhooks)

    assert [e["data"]["incident_key"] for e in receiver.events()] == ["a", "b", "c", "d"]


async def test_deliveries_keep_their_order_while_one_is_retried(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    receiver.answers.extend([500, 500])
    key = v2_key(state)

    await send(client, trigger(key, "x"))
    await send(client, follow_up(key, "acknowledge", "x"))
    await send(client, follow_up(key, "resolve", "x"))
    await settle(webhooks)

    assert receiver.event_types() == [
        "incident.triggered", "incident.triggered", "incident.triggered",
        "incident.acknowledged", "incident.resolved",
    ]  # fmt: skip
    # Each body is the incident as it was when it changed, not as it is when sent.
    assert [e["data"]["status"] for e in receiver.events()[2:]] == [
        "triggered", "acknowledged", "resolved",
    ]  # fmt: skip


async def test_the_change_is_answered_without_waiting_for_the_delivery(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    receiver.answers.append(HANG)  # a receiver that never answers must not hold the event up

    response = await send(client, trigger(v2_key(state), "x"))
    (under_way,) = await deliveries(client)
    await settle(webhooks)

    assert response.status_code == 202
    assert under_way["state"] == "pending"
    assert (await deliveries(client))[0]["state"] == "delivered"


async def test_deleting_a_service_sends_service_deleted(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    key = v2_key(state)
    service_id = service_of_key(state, key)
    name = state.services[service_id].name
    events = ["incident.triggered", "service.deleted"]
    sub_id, secret = await subscribe(client, acme_token, events=events, service_id=service_id)
    await subscribe(client, acme_token, events=["incident.triggered"], url=HOOK_URL + "/other")

    deleted = await client.delete(f"/_sandbox/accounts/acme-corp/services/{service_id}")
    await settle(webhooks)

    assert deleted.status_code == 204
    (got,) = receiver.received
    assert verify(got, secret)
    assert got.headers["x-webhook-subscription"] == sub_id
    event = got.event
    assert (event["event_type"], event["resource_type"]) == ("service.deleted", "service")
    assert event["agent"]["id"] == ACME_USER
    assert event["data"]["id"] == service_id
    assert (event["data"]["type"], event["data"]["summary"]) == ("service", name)
    assert set(event["data"]) == {
        "id", "type", "summary", "self", "html_url", "alert_creation", "teams",
    }  # fmt: skip
    (logged,) = await deliveries(client)
    assert (logged["event_type"], logged["incident"]) == ("service.deleted", None)


async def test_a_deleted_subscription_gets_nothing_more(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    path = f"/us/api/webhook_subscriptions/{sub_id}"
    assert (await client.delete(path, headers=bearer(acme_token))).status_code == 204

    await send(client, trigger(v2_key(state), "x"))
    await settle(webhooks)

    assert receiver.received == []


async def test_the_delivery_log_filters_and_clears(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    first, _ = await subscribe(client, acme_token)
    second, _ = await subscribe(client, acme_token, events=["incident.resolved"])
    receiver.answers.append(400)
    key = v2_key(state)
    await send(client, trigger(key, "x"))
    await send(client, follow_up(key, "resolve", "x"))
    await settle(webhooks)

    mine = await deliveries(client, subscription=second)
    resolved = await deliveries(client, event_type="incident.resolved")
    dropped = await deliveries(client, state="dropped")
    bad = await client.get("/_sandbox/webhooks/deliveries", params={"state": "lost"})
    cleared = await client.delete("/_sandbox/webhooks/deliveries")

    assert [d["subscription"] for d in mine] == [second]
    assert {d["subscription"] for d in resolved} == {first, second}
    assert [(d["subscription"], d["event_type"]) for d in dropped] == [
        (first, "incident.triggered")
    ]
    assert bad.status_code == 400
    assert cleared.status_code == 204
    assert await deliveries(client) == []


async def test_delivery_settings_can_be_read_and_changed(client: httpx2.AsyncClient) -> None:
    before = (await client.get("/_sandbox/webhooks/settings")).json()

    changed = await client.post("/_sandbox/webhooks/settings", json={"max_attempts": 2})
    refused = [
        await client.post("/_sandbox/webhooks/settings", json=bad)
        for bad in (
            {"max_attempts": 0},
            {"max_attempts": 1.5},
            {"timeout_seconds": "5"},
            {"retry_factor": 0.5},
            {"bogus": 1},
        )
    ]

    assert before["timeout_seconds"] == 0.3
    assert before["disable_after_drops"] == 3
    assert changed.json() == before | {"max_attempts": 2}
    assert [r.status_code for r in refused] == [400] * 5
