"""`{base}/{us|eu}/api/webhook_subscriptions`: v3 webhook subscriptions, scoped to the
caller's account like the rest of the REST API (`pdsandbox.rest.api`). Creating one answers 200
(`createWebhookSubscription`), deleting 204, and a ping (`pagey.ping`) 202.

A subscription can be off in two ways, as in PagerDuty:

- its owner switched it off: `PUT /webhook_subscriptions/{id}` (`updateWebhookSubscription`)
  with `"active": false`, and back on with `"active": true`. The PUT changes `description`,
  `events`, `filter` and `active`; `delivery_method` cannot be changed ("This operation does
  not support updating the `delivery_method`"), so naming it is a 400.
- PagerDuty disabled it for 24 hours after 3 consecutive dropped deliveries: its
  `delivery_method.temporarily_disabled` is true until `POST
  /webhook_subscriptions/{id}/enable` (`enableWebhookSubscription`, no body, 200 with the
  subscription) or the 24 hours end. A PUT of `"active": true` does not end it: the document
  sends re-enabling through `enable` ("Webhooks v3 Behavior": "via the 'Enable a webhook
  subscription' REST API endpoint").

While either holds, nothing is delivered, and the subscription reads `"active": false` (the
sandbox folds the temporary disable into `active` so a client that checks either member sees
it; `temporarily_disabled` tells the two apart).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pdsandbox import ids
from pdsandbox.models import WebhookSubscription
from pdsandbox.rest.common import Caller, invalid, json_object, not_found, parse_page
from pdsandbox.rest.shapes import Shapes
from pdsandbox.state import SandboxState
from pdsandbox.urls import is_http_url
from pdsandbox.webhooks.sender import WebhookSender

WEBHOOK_EVENTS = frozenset(
    {
        "incident.acknowledged", "incident.annotated", "incident.conference_bridge.updated",
        "incident.custom_field_values.updated", "incident.delegated", "incident.escalated",
        "incident.incident_type.changed", "incident.priority_updated", "incident.reassigned",
        "incident.reopened", "incident.resolved", "incident.responder.added",
        "incident.responder.replied", "incident.status_update_published",
        "incident.triggered", "incident.unacknowledged", "incident.workflow.completed",
        "incident.workflow.started", "pagey.ping", "service.created", "service.deleted",
        "service.updated",
    }
)  # fmt: skip
WEBHOOK_FILTER_TYPES = ("service_reference", "team_reference", "account_reference")
# `filter_type` of GET /webhook_subscriptions names the resource without `_reference`.
WEBHOOK_LIST_FILTERS = {
    "account": "account_reference",
    "service": "service_reference",
    "team": "team_reference",
}


class WebhookSubscriptions:
    def __init__(self, state: SandboxState, shapes: Shapes, sender: WebhookSender) -> None:
        self.state = state
        self.shapes = shapes
        self.sender = sender

    async def list_webhooks(self, request: Request, caller: Caller) -> Response:
        page = parse_page(request)
        wanted = _webhook_list_filter(request, caller)
        subs = [
            self.shapes.webhook_subscription(s, reveal_secret=False)
            for s in self.state.webhook_subscriptions.values()
            if s.account_id == caller.account.id
            and (wanted is None or (s.filter_type, s.filter_id) == wanted)
        ]
        return JSONResponse(page.of("webhook_subscriptions", subs))

    async def get_webhook(self, request: Request, caller: Caller) -> Response:
        sub = self.state.webhook_subscription_in(caller.account.id, request.path_params["wid"])
        if sub is None:
            raise not_found()
        shape = self.shapes.webhook_subscription(sub, reveal_secret=False)
        return JSONResponse({"webhook_subscription": shape})

    async def delete_webhook(self, request: Request, caller: Caller) -> Response:
        sub = self.state.webhook_subscription_in(caller.account.id, request.path_params["wid"])
        if sub is None:
            raise not_found()
        self.state.delete_webhook_subscription(sub.id)
        return Response(status_code=204)

    async def update_webhook(self, request: Request, caller: Caller) -> Response:
        sub = self.state.webhook_subscription_in(caller.account.id, request.path_params["wid"])
        if sub is None:
            raise not_found()
        body = await json_object(request, "webhook_subscription")
        errors: list[str] = []
        changes: dict[str, Any] = {}
        if "delivery_method" in body:
            errors.append("delivery_method cannot be updated; create a new subscription.")
        if "description" in body:
            if not isinstance(body["description"], str):
                errors.append("description must be a string.")
            else:
                changes["description"] = body["description"]
        if "events" in body:
            events = _events(body["events"], errors)
            if events is not None:
                changes["events"] = events
        if "filter" in body:
            filter_type, filter_id = self._filter(body["filter"], caller, errors)
            changes |= {"filter_type": filter_type, "filter_id": filter_id}
        if "active" in body:
            if not isinstance(body["active"], bool):
                errors.append("active must be true or false.")
            else:
                changes["enabled"] = body["active"]
        if errors:
            raise invalid(*errors)
        updated = self.state.update_webhook_subscription(sub.id, changes)
        shape = self.shapes.webhook_subscription(updated, reveal_secret=False)
        return JSONResponse({"webhook_subscription": shape})

    async def enable_webhook(self, request: Request, caller: Caller) -> Response:
        """`enableWebhookSubscription`: ends a temporary disable after failed deliveries."""
        sub = self.state.webhook_subscription_in(caller.account.id, request.path_params["wid"])
        if sub is None:
            raise not_found()
        enabled = self.sender.enable(sub.id)
        assert enabled is not None
        shape = self.shapes.webhook_subscription(enabled, reveal_secret=False)
        return JSONResponse({"webhook_subscription": shape})

    async def ping_webhook(self, request: Request, caller: Caller) -> Response:
        """PagerDuty's "Test a webhook subscription": a `pagey.ping` to it, answered 202."""
        sub = self.state.webhook_subscription_in(caller.account.id, request.path_params["wid"])
        if sub is None:
            raise not_found()
        self.sender.ping(sub.id)
        return Response(status_code=202)

    async def create_webhook(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request, "webhook_subscription")
        sub = self._from_body(body, caller)
        self.state.add_webhook_subscription(sub)
        shape = self.shapes.webhook_subscription(sub, reveal_secret=True)
        # 200, not 201: the one create call whose documented answer is 200.
        return JSONResponse({"webhook_subscription": shape}, status_code=200)

    def _from_body(self, body: dict[str, Any], caller: Caller) -> WebhookSubscription:
        errors: list[str] = []
        if body.get("type") != "webhook_subscription":
            errors.append("Type must be 'webhook_subscription'.")
        method = body.get("delivery_method")
        method = method if isinstance(method, dict) else {}
        url = method.get("url")
        if method.get("type") != "http_delivery_method":
            errors.append("delivery_method.type must be 'http_delivery_method'.")
        if not isinstance(url, str) or not is_http_url(url):
            errors.append("delivery_method.url must be an http(s) URL.")
        headers = _custom_headers(method.get("custom_headers", []), errors)
        events = _events(body.get("events"), errors)
        filter_type, filter_id = self._filter(body.get("filter"), caller, errors)
        description = body.get("description", "")
        if not isinstance(description, str):
            errors.append("description must be a string.")
        if errors:
            raise invalid(*errors)
        assert isinstance(url, str)
        assert events is not None
        assert isinstance(description, str)
        return WebhookSubscription(
            id=self.state.new_id(),
            account_id=caller.account.id,
            client_id=caller.grant.client_id,
            url=url,
            events=events,
            filter_type=filter_type,
            filter_id=filter_id,
            description=description,
            custom_headers=headers,
            secret=ids.webhook_secret(self.state.rng),
            created_at=self.state.now(),
        )

    def _filter(self, raw: object, caller: Caller, errors: list[str]) -> tuple[str, str | None]:
        if not isinstance(raw, dict) or raw.get("type") not in WEBHOOK_FILTER_TYPES:
            errors.append(f"filter.type must be one of: {', '.join(WEBHOOK_FILTER_TYPES)}.")
            return "", None
        filter_type, filter_id = raw["type"], raw.get("id")
        if filter_type == "account_reference":
            return filter_type, caller.account.id
        if not isinstance(filter_id, str) or not filter_id:
            errors.append("filter.id is required.")
        elif (
            filter_type == "service_reference"
            and self.state.service_in(caller.account.id, filter_id) is None
        ):
            errors.append("filter.id does not name a service of this account.")
        return filter_type, filter_id if isinstance(filter_id, str) else None


def _events(raw: object, errors: list[str]) -> tuple[str, ...] | None:
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(e, str) and e in WEBHOOK_EVENTS for e in raw)
    ):
        errors.append("events must be a non-empty list of known event types.")
        return None
    if len(set(raw)) != len(raw):
        errors.append("events must not name an event type twice.")  # uniqueItems
        return None
    return tuple(raw)


def _custom_headers(raw: object, errors: list[str]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not all(
        isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
        for h in raw
    ):
        errors.append("delivery_method.custom_headers must be a list of {name, value}.")
        return ()
    return tuple((h["name"], h["value"]) for h in raw)


def _webhook_list_filter(request: Request, caller: Caller) -> tuple[str, str | None] | None:
    """The (filter type, filter id) that GET /webhook_subscriptions' `filter_type` and
    `filter_id` ask for; `filter_id` is required unless the type is the account."""
    raw_type = request.query_params.get("filter_type")
    if raw_type is None:
        return None
    filter_type = WEBHOOK_LIST_FILTERS.get(raw_type)
    if filter_type is None:
        raise invalid(f"filter_type must be one of: {', '.join(WEBHOOK_LIST_FILTERS)}")
    if filter_type == "account_reference":
        return filter_type, caller.account.id
    filter_id = request.query_params.get("filter_id")
    if not filter_id:
        raise invalid("filter_id is required when filter_type is service or team")
    return filter_type, filter_id
