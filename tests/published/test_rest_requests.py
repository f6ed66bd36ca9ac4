"""The requests pdconnect's REST client sends, captured through httpx2.MockTransport, against
PagerDuty's REST API document (REST.json, see `rest_documented`); and the documented answers,
written here in our words, read back by the client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from app.pagerduty.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PagerDutyError,
    RetryLater,
    Unauthorized,
)
from app.pagerduty.rest import RestClient
from tests.published import rest_documented as doc
from tests.published.shapes import conforms, problems

API = "https://api.pagerduty.com"
TOKEN = "pdus+_0XBPWQQ_published_schema_check"
SERVICE_ID = "PSVC001"
POLICY_ID = "PEPL001"
INTEGRATION_ID = "PINT001"
SUBSCRIPTION_ID = "PWHS001"
KEY = "0123456789abcdef0123456789abcdef"


def _ref(kind: str, id_: str, path: str) -> dict[str, Any]:
    return {
        "id": id_,
        "type": f"{kind}_reference",
        "summary": f"{kind} {id_}",
        "self": f"{API}/{path}",
        "html_url": f"https://acme.pagerduty.com/{path}",
    }


def integration() -> dict[str, Any]:
    return {
        "id": INTEGRATION_ID,
        "type": "events_api_v2_inbound_integration",
        "summary": "pdconnect",
        "name": "pdconnect",
        "service": _ref("service", SERVICE_ID, f"services/{SERVICE_ID}"),
        "created_at": "2025-03-14T12:00:00Z",
        "vendor": None,
        "integration_key": KEY,
    }


def service(name: str = "Checkout") -> dict[str, Any]:
    return {
        "id": SERVICE_ID,
        "type": "service",
        "summary": name,
        "name": name,
        "status": "critical",
        "created_at": "2025-03-14T12:00:00Z",
        "last_incident_timestamp": "2025-03-14T12:30:00Z",
        "escalation_policy": _ref(
            "escalation_policy", POLICY_ID, f"escalation_policies/{POLICY_ID}"
        ),
        "teams": [],
        "integrations": [integration()],
    }


def policy() -> dict[str, Any]:
    return {
        "id": POLICY_ID,
        "type": "escalation_policy",
        "name": "Default",
        "summary": "Default",
        "escalation_rules": [
            {
                "escalation_delay_in_minutes": 30,
                "targets": [{"id": "PUSR001", "type": "user_reference"}],
            }
        ],
    }


def subscription(request: dict[str, Any]) -> dict[str, Any]:
    asked = request["webhook_subscription"]
    return {
        "id": SUBSCRIPTION_ID,
        "type": "webhook_subscription",
        "active": True,
        "delivery_method": asked["delivery_method"]
        | {"id": "PDLV001", "secret": "whsec-shown-once", "temporarily_disabled": False},
        "events": asked["events"],
        "filter": asked["filter"],
    }


def page(member: str, items: list[dict[str, Any]], request: httpx2.Request) -> dict[str, Any]:
    offset = int(request.url.params.get("offset", "0"))
    return {member: items, "limit": 100, "offset": offset, "more": False, "total": None}


class DocumentedPagerDuty:
    """Answers each documented call with a documented answer; records what was sent and
    every way a request strays from the document."""

    def __init__(self) -> None:
        self.seen: list[tuple[doc.Operation, httpx2.Request]] = []
        self.problems: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        op = doc.operation_for(request.method, path)
        self.seen.append((op, request))
        self.problems += self._check(op, request)
        status, body = op.success, self._answer(op, request)
        if op.answer is not None:
            # Our answers must themselves be what the document describes.
            self.problems += [f"(our answer) {p}" for p in problems(body, op.answer)]
        return httpx2.Response(status, json=body) if body is not None else httpx2.Response(204)

    def _check(self, op: doc.Operation, request: httpx2.Request) -> list[str]:
        found: list[str] = []
        name = op.operation_id
        for header, value in op.headers.items():
            if request.headers.get(header) != value:
                found.append(f"{name}: {header} is {request.headers.get(header)!r}")
        # pagerduty.md §5: an OAuth access token goes as a bearer token.
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            found.append(f"{name}: Authorization is not the bearer token")
        found += doc.query_problems(op, list(request.url.params.multi_items()))
        if op.request is not None:
            found += [f"{name}: {p}" for p in problems(json.loads(request.content), op.request)]
        elif request.content:
            found.append(f"{name}: a body was sent where the document takes none")
        return found

    def _answer(self, op: doc.Operation, request: httpx2.Request) -> dict[str, Any] | None:
        if op is doc.LIST_SERVICES:
            return page("services", [service()], request)
        if op is doc.LIST_ESCALATION_POLICIES:
            return page("escalation_policies", [policy()], request)
        if op is doc.CREATE_SERVICE:
            asked = json.loads(request.content)["service"]
            return {"service": service(asked["name"]) | {"integrations": [], "status": "active"}}
        if op in (doc.CREATE_INTEGRATION, doc.GET_INTEGRATION):
            return {"integration": integration()}
        if op is doc.CREATE_WEBHOOK_SUBSCRIPTION:
            return {"webhook_subscription": subscription(json.loads(request.content))}
        return None  # the deletes


@pytest.fixture
def pagerduty() -> DocumentedPagerDuty:
    return DocumentedPagerDuty()


@pytest.fixture
async def rest(pagerduty: DocumentedPagerDuty) -> AsyncIterator[RestClient]:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(pagerduty)) as http:
        yield RestClient(http, API, TOKEN)


async def test_every_call_pdconnect_makes_is_documented_and_well_formed(
    rest: RestClient, pagerduty: DocumentedPagerDuty
) -> None:
    services = await rest.list_services()
    policies = await rest.list_escalation_policies()
    created = await rest.create_service(name="Checkout", escalation_policy_id=POLICY_ID)
    added = await rest.create_events_integration(service_id=created.id, name="pdconnect")
    read = await rest.get_integration(service_id=created.id, integration_id=added.id)
    subscribed = await rest.create_webhook_subscription(
        url="https://vendor.example/pagerduty/webhooks/1",
        events=["incident.triggered", "incident.resolved", "service.deleted"],
        filter_type="service_reference",
        filter_id=created.id,
    )
    await rest.delete_webhook_subscription(subscribed.id)
    await rest.delete_integration(service_id=created.id, integration_id=added.id)

    assert pagerduty.problems == []
    called = [op.operation_id for op, _ in pagerduty.seen]
    assert sorted(called) == sorted(op.operation_id for op in doc.PRODUCT_CALLS)
    assert [s.integration_ids for s in services] == [(INTEGRATION_ID,)]
    assert [p.id for p in policies] == [POLICY_ID]
    assert read.integration_key == added.integration_key == KEY
    # createWebhookSubscription answers 200 (not 201), and the secret is read from it.
    assert subscribed.secret == "whsec-shown-once"


async def test_lists_ask_as_the_document_allows(
    rest: RestClient, pagerduty: DocumentedPagerDuty
) -> None:
    """limit, offset and include[] as listServices and listEscalationPolicies take them,
    and within PagerDuty's classic-pagination bound (offset + limit <= 10000, limit <= 100)."""
    await rest.list_services()
    await rest.list_escalation_policies()

    services, policies = (request.url.params for _, request in pagerduty.seen)
    assert services.get_list("include[]") == ["integrations"]
    assert "include[]" not in policies
    for params in (services, policies):
        limit, offset = int(params["limit"]), int(params["offset"])
        assert 0 < limit <= 100
        assert offset + limit <= 10_000


async def test_webhook_events_are_sent_once_each(
    rest: RestClient, pagerduty: DocumentedPagerDuty
) -> None:
    """WebhookSubscription `events`: uniqueItems, so a repeated type is sent once."""
    await rest.create_webhook_subscription(
        url="https://vendor.example/pagerduty/webhooks/1",
        events=["incident.triggered", "incident.resolved", "incident.triggered"],
        filter_type="account_reference",
        filter_id=None,
    )

    sent = json.loads(pagerduty.seen[0][1].content)["webhook_subscription"]
    assert pagerduty.problems == []
    assert sent["events"] == ["incident.triggered", "incident.resolved"]
    assert sent["filter"] == {"type": "account_reference"}


def _error(message: str, code: int, *details: str) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"message": message, "code": code}}
    if details:
        body["error"]["errors"] = list(details)
    conforms(body, doc.ERROR)
    return body


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            _error("Invalid Input Provided", 2001, "Name has already been taken"),
            InvalidRequest,
        ),
        (401, _error("Unauthorized", 2006), Unauthorized),
        (402, _error("Payment Required", 2012), InvalidRequest),
        (403, _error("Access Denied", 2010), Forbidden),
        (404, _error("Not Found", 2100), NotFound),
        (429, _error("Rate Limit Exceeded", 2020), RetryLater),
    ],
)
async def test_documented_errors_become_what_the_caller_should_do(
    status: int, body: dict[str, Any], expected: type[PagerDutyError]
) -> None:
    """REST.json's ArgumentError, Unauthorized, PaymentRequired, Forbidden, NotFound and
    TooManyRequests answers, all in the `{"error": {...}}` body."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        rest = RestClient(http, API, TOKEN)
        with pytest.raises(expected) as raised:
            await rest.create_service(name="Checkout", escalation_policy_id=POLICY_ID)

    if status == 400:
        assert isinstance(raised.value, InvalidRequest)
        assert raised.value.errors == ("Name has already been taken",)
