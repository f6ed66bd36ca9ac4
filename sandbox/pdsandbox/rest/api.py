"""The REST API endpoints the product uses, on `{base}/{us|eu}/api`; webhook subscriptions'
are in `pdsandbox.rest.webhook_subscriptions`, incidents and notes in `pdsandbox.rest.incidents`,
on-call, schedules and `/users/me` in `pdsandbox.rest.oncall`.

Every lookup is scoped to the caller's account: another account's service, integration or
subscription answers 404 exactly as a missing one does.

Status codes and parameters follow PagerDuty's OpenAPI document (`reference/REST/openapiv3.json`
in PagerDuty/api-schema): creating a service or an integration answers 201, creating a webhook
subscription 200 (`createWebhookSubscription`), deletes 204. `DELETE
/services/{id}/integrations/{integration_id}` is missing from that document but PagerDuty's own
Go client (`DeleteIntegrationWithContext`) and Terraform provider call it, so it stays.
"""

from __future__ import annotations

from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pdsandbox.models import EscalationPolicy, Region, Service
from pdsandbox.rest.common import (
    Caller,
    RestError,
    RestGate,
    invalid,
    json_object,
    not_found,
    parse_page,
)
from pdsandbox.rest.incidents import IncidentsApi
from pdsandbox.rest.oncall import OnCallApi
from pdsandbox.rest.shapes import ServiceActivity, Shapes
from pdsandbox.rest.webhook_subscriptions import WebhookSubscriptions
from pdsandbox.state import SandboxState
from pdsandbox.webhooks.sender import WebhookSender

SERVICE_NAME_MAX_LENGTH = 255
INTEGRATION_TYPES = {
    "events_api_v2_inbound_integration": "Events API V2",
    "generic_events_api_inbound_integration": "Events API V1",
}
# `sort_by` of GET /services and GET /escalation_policies; "name" is the default.
SORT_BY_NAME = ("name", "name:asc", "name:desc")


class RestApi:
    def __init__(self, state: SandboxState, sender: WebhookSender) -> None:
        self.state = state
        self.shapes = Shapes(state)
        self.webhooks = WebhookSubscriptions(state, self.shapes, sender)
        self.incidents = IncidentsApi(state, self.shapes)
        self.oncall = OnCallApi(state, self.shapes)

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
                gate.guard(self.webhooks.list_webhooks, "read"),
                methods=["GET"],
            ),
            Route(
                "/webhook_subscriptions",
                gate.guard(self.webhooks.create_webhook, "write"),
                methods=["POST"],
            ),
            Route(
                "/webhook_subscriptions/{wid}",
                gate.guard(self.webhooks.get_webhook, "read"),
                methods=["GET"],
            ),
            Route(
                "/webhook_subscriptions/{wid}",
                gate.guard(self.webhooks.delete_webhook, "write"),
                methods=["DELETE"],
            ),
            Route(
                "/webhook_subscriptions/{wid}",
                gate.guard(self.webhooks.update_webhook, "write"),
                methods=["PUT"],
            ),
            Route(
                "/webhook_subscriptions/{wid}/enable",
                gate.guard(self.webhooks.enable_webhook, "write"),
                methods=["POST"],
            ),
            Route(
                "/webhook_subscriptions/{wid}/ping",
                gate.guard(self.webhooks.ping_webhook, "write"),
                methods=["POST"],
            ),
            Route("/incidents", gate.guard(self.incidents.list_incidents, "read"), methods=["GET"]),
            Route(
                "/incidents/{iid}", gate.guard(self.incidents.get_incident, "read"), methods=["GET"]
            ),
            Route(
                "/incidents/{iid}/notes",
                gate.guard(self.incidents.list_notes, "read"),
                methods=["GET"],
            ),
            Route(
                "/incidents/{iid}/notes",
                gate.guard(self.incidents.create_note, "write"),
                methods=["POST"],
            ),
            Route("/oncalls", gate.guard(self.oncall.list_oncalls, "read"), methods=["GET"]),
            Route("/schedules", gate.guard(self.oncall.list_schedules, "read"), methods=["GET"]),
            Route(
                "/schedules/{sched}", gate.guard(self.oncall.get_schedule, "read"), methods=["GET"]
            ),
            Route("/users/me", gate.guard(self.oncall.current_user, "read"), methods=["GET"]),
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


_Named = TypeVar("_Named", Service, EscalationPolicy)


def _sorted_by_name(items: list[_Named], sort_by: str | None) -> list[_Named]:
    """The state's lists come sorted by name already; only the direction can change."""
    if sort_by is None:
        return items
    if sort_by not in SORT_BY_NAME:
        raise invalid(f"sort_by must be one of: {', '.join(SORT_BY_NAME)}")
    return items[::-1] if sort_by == "name:desc" else items


async def _unknown_path(request: Request) -> Response:
    return RestError(404, "Not Found", 2100).response()
