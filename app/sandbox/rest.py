"""The REST API endpoints the product uses, on `{base}/{us|eu}/api`.

Every lookup is scoped to the caller's account: another account's service, integration or
subscription answers 404 exactly as a missing one does.

Status codes and parameters follow PagerDuty's OpenAPI document (`reference/REST/openapiv3.json`
in PagerDuty/api-schema): creating a service or an integration answers 201, creating a webhook
subscription 200 (`createWebhookSubscription`), deletes 204. `DELETE
/services/{id}/integrations/{integration_id}` is missing from that document but PagerDuty's own
Go client (`DeleteIntegrationWithContext`) and Terraform provider call it, so it stays.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.sandbox import ids
from app.sandbox.models import EscalationPolicy, Region, Service, WebhookSubscription
from app.sandbox.rest_common import (
    Caller,
    RestError,
    RestGate,
    invalid,
    json_object,
    not_found,
    parse_page,
)
from app.sandbox.rest_shapes import ServiceActivity, Shapes
from app.sandbox.state import SandboxState
from app.sandbox.urls import is_http_url
from app.sandbox.webhook_sender import WebhookSender

SERVICE_NAME_MAX_LENGTH = 255
INTEGRATION_TYPES = {
    "events_api_v2_inbound_integration": "Events API V2",
    "generic_events_api_inbound_integration": "Events API V1",
}
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
# `sort_by` of GET /services and GET /escalation_policies; "name" is the default.
SORT_BY_NAME = ("name", "name:asc", "name:desc")


class RestApi:
    def __init__(self, state: SandboxState, sender: WebhookSender) -> None:
        self.state = state
        self.shapes = Shapes(state)
        self.sender = sender

    def routes(self, region: Region) -> list[BaseRoute]:
        gate = RestGate(self.state, region)
        return [
            Route("/services", gate.guard(self.list_services, "read"), methods=["GET"]),
            Route("/services", gate.guard(self.create_service, "write"), methods=["POST"]),
            Route("/services/{sid}", gate.guard(self.get_service, "read"), methods=["GET"]),
            Route(
                "/services/{sid}/integrations",
                gate.guard(self.create_integration, "write"),
                methods=["POST"],
            ),
            Route(
                "/services/{sid}/integrations/{iid}",
                gate.guard(self.get_integration, "read"),
                methods=["GET"],
            ),
            Route(
                "/services/{sid}/integrations/{iid}",
                gate.guard(self.delete_integration, "write"),
                methods=["DELETE"],
            ),
            Route("/escalation_policies", gate.guard(self.list_policies, "read"), methods=["GET"]),
            Route(
                "/escalation_policies/{pid}", gate.guard(self.get_policy, "read"), methods=["GET"]
            ),
            Route(
                "/webhook_subscriptions",
                gate.guard(self.list_webhooks, "read"),
                methods=["GET"],
            ),
            Route(
                "/webhook_subscriptions",
                gate.guard(self.create_webhook, "write"),
                methods=["POST"],
            ),
            Route(
                "/webhook_subscriptions/{wid}",
                gate.guard(self.get_webhook, "read"),
                methods=["GET"],
            ),
            Route(
                "/webhook_subscriptions/{wid}",
                gate.guard(self.delete_webhook, "write"),
                methods=["DELETE"],
            ),
            Route(
                "/webhook_subscriptions/{wid}/ping",
                gate.guard(self.ping_webhook, "write"),
                methods=["POST"],
            ),
            Route(
                "/{path:path}",
                _unknown_path,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            ),
        ]

    def _service(self, request: Request, caller: Caller) -> Service:
        service = self.state.service_in(caller.account.id, request.path_params["sid"])
        if service is None:
            raise not_found()
        return service

    # Services

    async def list_services(self, request: Request, caller: Caller) -> Response:
        page = parse_page(request)
        params = request.query_params
        with_integrations = "integrations" in params.getlist("include[]")
        services = self.state.services_in(caller.account.id, params.get("query"))
        if (name := params.get("name")) is not None:
            services = [s for s in services if s.name == name]
        services = _sorted_by_name(services, params.get("sort_by"))
        activity = self.shapes.activity()
        shaped = [
            self.shapes.service(
                s,
                include_integrations=with_integrations,
                activity=activity.get(s.id, ServiceActivity()),
            )
            for s in page.window(services)
        ]
        return JSONResponse(page.envelope("services", shaped, len(services)))

    async def get_service(self, request: Request, caller: Caller) -> Response:
        service = self._service(request, caller)
        with_integrations = "integrations" in request.query_params.getlist("include[]")
        shape = self.shapes.service(service, include_integrations=with_integrations)
        return JSONResponse({"service": shape})

    async def create_service(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request, "service")
        account_id = caller.account.id
        errors: list[str] = []
        if body.get("type") != "service":
            errors.append("Type must be 'service'.")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append("Name can't be blank")
        elif len(name) > SERVICE_NAME_MAX_LENGTH:
            errors.append(f"Name is too long (maximum is {SERVICE_NAME_MAX_LENGTH} characters)")
        elif self.state.service_named(account_id, name) is not None:
            errors.append("Name has already been taken")
        description = body.get("description", "")
        if not isinstance(description, str):
            errors.append("Description must be a string")
        # createService: "If `status` is included in the request, it must have a value of
        # `active` when creating a new service."
        if "status" in body and body["status"] != "active":
            errors.append("Status must be 'active' when creating a service")
        ref = body.get("escalation_policy")
        policy_id = ref.get("id") if isinstance(ref, dict) else None
        if not isinstance(ref, dict) or ref.get("type") not in (
            "escalation_policy_reference",
            "escalation_policy",
        ):
            errors.append("Escalation policy must be an escalation_policy_reference")
        elif not isinstance(policy_id, str) or self.state.policy_in(account_id, policy_id) is None:
            errors.append("Escalation policy not found")
        if errors:
            raise invalid(*errors)
        assert isinstance(name, str)
        assert isinstance(policy_id, str)
        assert isinstance(description, str)
        service = self.state.create_service(account_id, name.strip(), description, policy_id)
        shape = self.shapes.service(service, include_integrations=False)
        return JSONResponse({"service": shape}, status_code=201)

    # Integrations

    async def create_integration(self, request: Request, caller: Caller) -> Response:
        service = self._service(request, caller)
        body = await json_object(request, "integration")
        type_ = body.get("type")
        errors: list[str] = []
        if type_ not in INTEGRATION_TYPES:
            errors.append(f"Type must be one of: {', '.join(sorted(INTEGRATION_TYPES))}")
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            errors.append("Name must be a non-empty string")
        ref = body.get("service")
        if ref is not None and (not isinstance(ref, dict) or ref.get("id") != service.id):
            errors.append("Service must reference the service in the URL")
        if errors:
            raise invalid(*errors)
        assert isinstance(type_, str)
        label = name.strip() if isinstance(name, str) else INTEGRATION_TYPES[type_]
        integration = self.state.create_integration(
            service, type_, label, created_by=caller.grant.client_id
        )
        shape = self.shapes.integration(integration, as_reference=False)
        return JSONResponse({"integration": shape}, status_code=201)

    async def get_integration(self, request: Request, caller: Caller) -> Response:
        found = self.state.integration_in(
            caller.account.id, request.path_params["sid"], request.path_params["iid"]
        )
        if found is None:
            raise not_found()
        return JSONResponse({"integration": self.shapes.integration(found, as_reference=False)})

    async def delete_integration(self, request: Request, caller: Caller) -> Response:
        found = self.state.integration_in(
            caller.account.id, request.path_params["sid"], request.path_params["iid"]
        )
        if found is None:
            raise not_found()
        self.state.delete_integration(found.id)
        return Response(status_code=204)

    # Escalation policies

    async def list_policies(self, request: Request, caller: Caller) -> Response:
        page = parse_page(request)
        policies = self.state.policies_in(caller.account.id, request.query_params.get("query"))
        policies = _sorted_by_name(policies, request.query_params.get("sort_by"))
        return JSONResponse(
            page.of("escalation_policies", [self.shapes.policy(p) for p in policies])
        )

    async def get_policy(self, request: Request, caller: Caller) -> Response:
        policy = self.state.policy_in(caller.account.id, request.path_params["pid"])
        if policy is None:
            raise not_found()
        return JSONResponse({"escalation_policy": self.shapes.policy(policy)})

    # Webhook subscriptions

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

    async def ping_webhook(self, request: Request, caller: Caller) -> Response:
        """PagerDuty's "Test a webhook subscription": a `pagey.ping` to it, answered 202."""
        sub = self.state.webhook_subscription_in(caller.account.id, request.path_params["wid"])
        if sub is None:
            raise not_found()
        self.sender.ping(sub.id)
        return Response(status_code=202)

    async def create_webhook(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request, "webhook_subscription")
        sub = self._webhook_from_body(body, caller)
        self.state.add_webhook_subscription(sub)
        shape = self.shapes.webhook_subscription(sub, reveal_secret=True)
        # 200, not 201: the one create call whose documented answer is 200.
        return JSONResponse({"webhook_subscription": shape}, status_code=200)

    def _webhook_from_body(self, body: dict[str, Any], caller: Caller) -> WebhookSubscription:
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
        events = body.get("events")
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e in WEBHOOK_EVENTS for e in events)
        ):
            errors.append("events must be a non-empty list of known event types.")
        elif len(set(events)) != len(events):
            errors.append("events must not name an event type twice.")  # uniqueItems
        filter_type, filter_id = self._webhook_filter(body.get("filter"), caller, errors)
        description = body.get("description", "")
        if not isinstance(description, str):
            errors.append("description must be a string.")
        if errors:
            raise invalid(*errors)
        assert isinstance(url, str)
        assert isinstance(events, list)
        assert isinstance(description, str)
        return WebhookSubscription(
            id=self.state.new_id(),
            account_id=caller.account.id,
            client_id=caller.grant.client_id,
            url=url,
            events=tuple(events),
            filter_type=filter_type,
            filter_id=filter_id,
            description=description,
            custom_headers=headers,
            secret=ids.webhook_secret(self.state.rng),
            created_at=self.state.now(),
        )

    def _webhook_filter(
        self, raw: object, caller: Caller, errors: list[str]
    ) -> tuple[str, str | None]:
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


def _custom_headers(raw: object, errors: list[str]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not all(
        isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
        for h in raw
    ):
        errors.append("delivery_method.custom_headers must be a list of {name, value}.")
        return ()
    return tuple((h["name"], h["value"]) for h in raw)


_Named = TypeVar("_Named", Service, EscalationPolicy)


def _sorted_by_name(items: list[_Named], sort_by: str | None) -> list[_Named]:
    """The state's lists come sorted by name already; only the direction can change."""
    if sort_by is None:
        return items
    if sort_by not in SORT_BY_NAME:
        raise invalid(f"sort_by must be one of: {', '.join(SORT_BY_NAME)}")
    return items[::-1] if sort_by == "name:desc" else items


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


async def _unknown_path(request: Request) -> Response:
    return RestError(404, "Not Found", 2100).response()
