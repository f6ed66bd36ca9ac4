"""Rotating a subscription's secret: both signatures while it lasts, then only the new one."""

from __future__ import annotations

import httpx2

from pdsandbox import SandboxState, WebhookSender
from tests.sandbox.events_flow import follow_up, send, trigger, v2_key
from tests.sandbox.flow import FakeClock
from tests.sandbox.webhook_flow import Receiver, settle, signed_with, subscribe, verify


async def test_a_rotation_signs_with_both_secrets_until_it_is_finished(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, old = await subscribe(client, acme_token)
    key = v2_key(state)

    rotated = await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/rotate_secret")
    new = rotated.json()["secret"]
    await send(client, trigger(key, "x"))
    await settle(webhooks)
    finished = await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/finish_rotation")
    await send(client, follow_up(key, "resolve", "x"))
    await settle(webhooks)

    assert rotated.status_code == 200
    assert rotated.json() == {
        "id": sub_id, "secret": new, "previous_secret": old, "previous_secret_until": None,
    }  # fmt: skip
    assert new != old
    during, after = receiver.received
    first, second = during.signatures
    # Each signature is the right one for its own secret, the new one first.
    assert signed_with(during, first, new)
    assert signed_with(during, second, old)
    assert finished.json()["previous_secret"] is None
    assert len(after.signatures) == 1
    assert verify(after, new)
    assert not verify(after, old)


async def test_a_rotation_with_an_overlap_ends_by_the_sandbox_clock(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
    clock: FakeClock,
) -> None:
    sub_id, old = await subscribe(client, acme_token)
    key = v2_key(state)

    rotated = await client.post(
        f"/_sandbox/webhook_subscriptions/{sub_id}/rotate_secret", json={"overlap_seconds": 60}
    )
    await send(client, trigger(key, "x"))
    await settle(webhooks)
    clock.now += 61
    await send(client, follow_up(key, "resolve", "x"))
    await settle(webhooks)

    new = rotated.json()["secret"]
    assert rotated.json()["previous_secret_until"] is not None
    during, after = receiver.received
    assert len(during.signatures) == 2
    assert verify(during, new)
    assert verify(during, old)
    assert len(after.signatures) == 1
    assert verify(after, new)


async def test_the_overlap_default_is_a_setting(
    client: httpx2.AsyncClient, acme_token: str, clock: FakeClock
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    await client.post("/_sandbox/webhooks/settings", json={"rotation_overlap_seconds": 30})

    await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/rotate_secret")
    during = (await client.get("/_sandbox/webhook_subscriptions")).json()
    clock.now += 31
    after = (await client.get("/_sandbox/webhook_subscriptions")).json()

    assert during["webhook_subscriptions"][0]["previous_secret"] is not None
    assert after["webhook_subscriptions"][0]["previous_secret"] is None


async def test_rotating_an_unknown_subscription_is_404(client: httpx2.AsyncClient) -> None:
    for action in ("rotate_secret", "finish_rotation", "enable"):
        response = await client.post(f"/_sandbox/webhook_subscriptions/PNOPE00/{action}")
        assert response.status_code == 404


async def test_a_bad_overlap_is_refused(client: httpx2.AsyncClient, acme_token: str) -> None:
    sub_id, secret = await subscribe(client, acme_token)

    response = await client.post(
        f"/_sandbox/webhook_subscriptions/{sub_id}/rotate_secret", json={"overlap_seconds": -1}
    )

    assert response.status_code == 400
    listed = (await client.get("/_sandbox/webhook_subscriptions")).json()
    assert listed["webhook_subscriptions"][0]["secret"] == secret
