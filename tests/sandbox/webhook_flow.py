"""Helpers for the webhook tests: a receiver in the test's process, subscribing through the
REST API, and checking signatures the way PagerDuty tells receivers to."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pdsandbox import SandboxState, WebhookSender
from tests.sandbox.flow import bearer

HOOK_URL = "http://receiver.test/pagerduty/webhooks"
HANG = -1  # an answer that never comes: the sender's timeout must fire
INCIDENT_EVENTS = [
    "incident.triggered", "incident.acknowledged", "incident.unacknowledged",
    "incident.resolved", "incident.reopened", "incident.escalated", "incident.reassigned",
]  # fmt: skip
INCIDENT_DATA_KEYS = {
    "id", "type", "self", "html_url", "number", "status", "incident_key", "created_at",
    "title", "service", "assignees", "escalation_policy", "teams", "priority", "urgency",
    "conference_bridge", "resolve_reason",
}  # fmt: skip


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)["event"]
        return event

    @property
    def webhook_id(self) -> str:
        return self.headers["x-webhook-id"]

    @property
    def signatures(self) -> list[str]:
        return self.headers["x-pagerduty-signature"].split(",")


class Receiver:
    """A webhook endpoint: records every request, answers with `answers` in turn (a status,
    or HANG), then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[int] = deque()
        self.app = Starlette(routes=[Route("/{path:path}", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(Received(request.url.path, dict(request.headers), body))
        answer = self.answers.popleft() if self.answers else 200
        if answer == HANG:
            await asyncio.sleep(60)
        return Response(status_code=answer)

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        return [r.event for r in self.received if path is None or r.path == path]

    def event_types(self, path: str | None = None) -> list[str]:
        return [e["event_type"] for e in self.events(path)]


def verify(received: Received, secret: str) -> bool:
    """PagerDuty's recipe: any `v1=` signature equal to the hex HMAC-SHA256 of the raw body."""
    return any(signed_with(received, s, secret) for s in received.signatures)


def signed_with(received: Received, signature: str, secret: str) -> bool:
    expected = "v1=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def subscription_body(
    events: list[str], filter_: dict[str, str], url: str = HOOK_URL
) -> dict[str, Any]:
    return {
        "webhook_subscription": {
            "type": "webhook_subscription",
            "delivery_method": {"type": "http_delivery_method", "url": url},
            "events": events,
            "filter": filter_,
        }
    }


async def subscribe(
    client: httpx2.AsyncClient,
    token: str,
    *,
    events: list[str] | None = None,
    service_id: str | None = None,
    url: str = HOOK_URL,
) -> tuple[str, str]:
    """A subscription to the service, or to the whole account without one: (id, secret)."""
    filter_ = (
        {"type": "service_reference", "id": service_id}
        if service_id is not None
        else {"type": "account_reference"}
    )
    response = await client.post(
        "/us/api/webhook_subscriptions",
        json=subscription_body(events or INCIDENT_EVENTS, filter_, url),
        headers=bearer(token),
    )
    # createWebhookSubscription answers 200 in PagerDuty's OpenAPI document.
    assert response.status_code == 200, response.text
    sub = response.json()["webhook_subscription"]
    return sub["id"], sub["delivery_method"]["secret"]


def service_of_key(state: SandboxState, routing_key: str) -> str:
    found = state.find_routing_key(routing_key)
    assert found is not None
    service_id: str = getattr(found, "service_id")  # noqa: B009 - integrations only
    return service_id


async def settle(webhooks: WebhookSender) -> None:
    async with asyncio.timeout(5):
        await webhooks.wait_idle()


async def deliveries(client: httpx2.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/_sandbox/webhooks/deliveries", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found
