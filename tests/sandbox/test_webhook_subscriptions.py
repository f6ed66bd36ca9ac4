"""Webhook subscriptions: stored, secret shown once, scoped to the account."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.flow import INITECH_USER, bearer, connect


def _subscription(service_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "webhook_subscription": {
            "type": "webhook_subscription",
            "delivery_method": {
                "type": "http_delivery_method",
                "url": "https://pdconnect.example/pagerduty/webhooks/abc",
                "custom_headers": [],
            },
            "events": ["incident.triggered", "incident.resolved", "service.deleted"],
            "filter": {"type": "service_reference", "id": service_id},
        }
        | fields
    }


def _acme_service(state: SandboxState) -> str:
    acme = state.account_by_subdomain("acme-corp")
    assert acme is not None
    return state.services_in(acme.id)[0].id


async def test_create_shows_the_secret_once_then_get_and_delete(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    service_id = _acme_service(state)

    created = await client.post(
        "/us/api/webhook_subscriptions",
        json=_subscription(service_id),
        headers=bearer(acme_token),
    )

    assert created.status_code == 200  # as PagerDuty's OpenAPI document says, not 201
    sub = created.json()["webhook_subscription"]
    secret = sub["delivery_method"]["secret"]
    assert isinstance(secret, str)
    assert len(secret) >= 32
    assert sub["filter"] == {"type": "service_reference", "id": service_id}
    assert sub["events"] == ["incident.triggered", "incident.resolved", "service.deleted"]
    path = f"/us/api/webhook_subscriptions/{sub['id']}"
    read = (await client.get(path, headers=bearer(acme_token))).json()["webhook_subscription"]
    assert read["delivery_method"]["secret"] is None
    assert read["delivery_method"]["url"] == sub["delivery_method"]["url"]
    view = (await client.get("/_sandbox/accounts/acme-corp")).json()
    assert [w["secret"] for w in view["webhook_subscriptions"]] == [secret]

    assert (await client.delete(path, headers=bearer(acme_token))).status_code == 204
    assert (await client.get(path, headers=bearer(acme_token))).status_code == 404
    assert (await client.delete(path, headers=bearer(acme_token))).status_code == 404


async def test_subscriptions_of_another_account_are_invisible(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    created = await client.post(
        "/us/api/webhook_subscriptions",
        json=_subscription(_acme_service(state)),
        headers=bearer(acme_token),
    )
    sub_id = created.json()["webhook_subscription"]["id"]
    initech = (await connect(client, user=INITECH_USER))["access_token"]

    read = await client.get(f"/us/api/webhook_subscriptions/{sub_id}", headers=bearer(initech))
    listed = await client.get("/us/api/webhook_subscriptions", headers=bearer(initech))

    assert read.status_code == 404
    assert listed.json()["webhook_subscriptions"] == []


@pytest.mark.parametrize(
    "fields",
    [
        {"events": []},
        {"events": ["incident.exploded"]},
        {"delivery_method": {"type": "http_delivery_method", "url": "ftp://x.example/"}},
        {"delivery_method": {"type": "email", "url": "https://x.example/"}},
        {"filter": {"type": "service_reference", "id": "PNOPE00"}},
        {"filter": {"type": "planet_reference", "id": "P000000"}},
        {"type": "subscription"},
    ],
)
async def test_invalid_subscription_is_400(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str, fields: dict[str, Any]
) -> None:
    response = await client.post(
        "/us/api/webhook_subscriptions",
        json=_subscription(_acme_service(state), **fields),
        headers=bearer(acme_token),
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2001
