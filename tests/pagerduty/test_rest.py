import json
from typing import Any

import httpx2
import pytest

from app.pagerduty.errors import (
    Forbidden,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    PagerDutyError,
    RetryLater,
    Unauthorized,
)
from app.pagerduty.models import EscalationPolicy, Integration, Service, WebhookSubscription
from app.pagerduty.rest import RestClient
from tests.pagerduty.conftest import Recorder

API = "https://api.pagerduty.com"
TOKEN = "pdus+_0XBPWQQ_rest_access_token"
INTEGRATION_KEY = "R0123456789abcdef0123456789ABCDE"[:32]
WEBHOOK_SECRET = "whsec_Xk3dL9vQ2mN8pR5tY7wZ0aB4cE6fH1jK"


@pytest.fixture
def rest(http: httpx2.AsyncClient) -> RestClient:
    return RestClient(http, API + "/", TOKEN)


def service_json(number: int) -> dict[str, Any]:
    return {
        "id": f"PSVC{number:04d}",
        "type": "service",
        "name": f"Service {number}",
        "summary": f"Service {number}",
        "html_url": f"https://acme.pagerduty.com/service-directory/PSVC{number:04d}",
        "status": "active",
        "escalation_policy": {
            "id": "PEP0001",
            "type": "escalation_policy_reference",
            "summary": "Default",
        },
        "integrations": [{"id": f"PINT{number:04d}", "type": "generic_email_inbound_integration"}],
    }


def body(request: httpx2.Request) -> Any:
    return json.loads(request.content)


def paged(items: list[dict[str, Any]], member: str, *, page_cap: int = 100) -> Any:
    """A handler answering classic pagination like PagerDuty, serving at most page_cap items."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params["offset"])
        if limit > 100 or offset + limit > 10_000:
            return httpx2.Response(400, json={"error": {"message": "Invalid Input Provided"}})
        page = items[offset : offset + min(limit, page_cap)]
        return httpx2.Response(
            200,
            json={
                member: page,
                "limit": limit,
                "offset": offset,
                "more": offset + len(page) < len(items),
                "total": None,
            },
        )

    return handler


async def test_list_services_follows_more_across_three_pages(
    rest: RestClient, pd: Recorder
) -> None:
    pd.handler = paged([service_json(n) for n in range(250)], "services")
    services = await rest.list_services()

    assert [s.id for s in services] == [f"PSVC{n:04d}" for n in range(250)]
    assert services[7] == Service(
        id="PSVC0007",
        name="Service 7",
        summary="Service 7",
        html_url="https://acme.pagerduty.com/service-directory/PSVC0007",
        status="active",
        escalation_policy_id="PEP0001",
        escalation_policy_name="Default",
        integration_ids=("PINT0007",),
    )
    assert [r.url.params["offset"] for r in pd.requests] == ["0", "100", "200"]
    for request in pd.requests:
        assert request.method == "GET"
        assert request.url.path == "/services"
        assert request.url.params["limit"] == "100"
        assert request.url.params["include[]"] == "integrations"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/vnd.pagerduty+json;version=2"
        assert request.headers["content-type"] == "application/json"


async def test_paging_advances_by_what_arrived(rest: RestClient, pd: Recorder) -> None:
    pd.handler = paged([service_json(n) for n in range(60)], "services", page_cap=25)
    services = await rest.list_services()
    assert len(services) == 60
    assert [r.url.params["offset"] for r in pd.requests] == ["0", "25", "50"]


async def test_paging_stops_at_pagerdutys_offset_bound(rest: RestClient, pd: Recorder) -> None:
    pd.handler = paged([service_json(n) for n in range(10_250)], "services")
    services = await rest.list_services()
    assert len(services) == 10_000
    assert len(pd.requests) == 100
    last = pd.requests[-1].url.params
    assert int(last["offset"]) + int(last["limit"]) == 10_000


async def test_paging_stops_on_an_empty_page_that_claims_more(
    rest: RestClient, pd: Recorder
) -> None:
    pd.handler = lambda request: httpx2.Response(200, json={"services": [], "more": True})
    assert await rest.list_services() == []
    assert len(pd.requests) == 1


async def test_a_service_seen_twice_while_paging_is_kept_once(
    rest: RestClient, pd: Recorder
) -> None:
    pages = iter(
        [
            {"services": [service_json(1), service_json(2)], "more": True},
            {"services": [service_json(2), service_json(3)], "more": False},
        ]
    )
    pd.handler = lambda request: httpx2.Response(200, json=next(pages))
    assert [s.id for s in await rest.list_services()] == ["PSVC0001", "PSVC0002", "PSVC0003"]


async def test_list_escalation_policies(rest: RestClient, pd: Recorder) -> None:
    policies = [{"id": f"PEP{n}", "name": f"Policy {n}"} for n in range(130)]
    pd.handler = paged(policies, "escalation_policies")
    found = await rest.list_escalation_policies()
    assert found[0] == EscalationPolicy(id="PEP0", name="Policy 0")
    assert len(found) == 130
    assert pd.requests[0].url.path == "/escalation_policies"


async def test_create_service(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(201, json={"service": service_json(9)})
    service = await rest.create_service(name="Checkout", escalation_policy_id="PEP0001")
    assert service.id == "PSVC0009"
    (request,) = pd.requests
    assert (request.method, str(request.url)) == ("POST", f"{API}/services")
    assert body(request) == {
        "service": {
            "type": "service",
            "name": "Checkout",
            "escalation_policy": {"id": "PEP0001", "type": "escalation_policy_reference"},
        }
    }


async def test_create_events_integration(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(
        201,
        json={
            "integration": {
                "id": "PINT0001",
                "type": "events_api_v2_inbound_integration",
                "name": "pdconnect",
                "service": {"id": "PSVC0001", "type": "service_reference"},
                "integration_key": INTEGRATION_KEY,
            }
        },
    )
    integration = await rest.create_events_integration(service_id="PSVC0001", name="pdconnect")
    assert integration == Integration(
        id="PINT0001",
        name="pdconnect",
        service_id="PSVC0001",
        integration_key=INTEGRATION_KEY,
        type="events_api_v2_inbound_integration",
    )
    (request,) = pd.requests
    assert (request.method, request.url.path) == ("POST", "/services/PSVC0001/integrations")
    assert body(request) == {
        "integration": {
            "type": "events_api_v2_inbound_integration",
            "name": "pdconnect",
            "service": {"id": "PSVC0001", "type": "service_reference"},
        }
    }
    assert INTEGRATION_KEY not in repr(integration)


async def test_a_new_integration_without_key_is_malformed(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(
        201, json={"integration": {"id": "PINT1", "type": "events_api_v2_inbound_integration"}}
    )
    with pytest.raises(MalformedResponse, match="integration_key"):
        await rest.create_events_integration(service_id="PSVC0001", name="pdconnect")


async def test_get_and_delete_integration(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(
        200,
        json={"integration": {"id": "PINT1", "type": "generic_email_inbound_integration"}},
    )
    integration = await rest.get_integration(service_id="PSVC1", integration_id="PINT1")
    assert (integration.service_id, integration.integration_key) == ("PSVC1", None)

    pd.handler = lambda request: httpx2.Response(204)
    await rest.delete_integration(service_id="PSVC1", integration_id="PINT1")
    assert [(r.method, r.url.path) for r in pd.requests] == [
        ("GET", "/services/PSVC1/integrations/PINT1"),
        ("DELETE", "/services/PSVC1/integrations/PINT1"),
    ]


async def test_ids_cannot_reach_another_path(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(204)
    await rest.delete_integration(service_id="a/../../users", integration_id="PINT1")
    assert pd.requests[0].url.raw_path == b"/services/a%2F..%2F..%2Fusers/integrations/PINT1"
    with pytest.raises(InvalidRequest, match=r"^The request to PagerDuty is invalid"):
        await rest.delete_webhook_subscription("..")
    assert len(pd.requests) == 1


async def test_create_webhook_subscription_returns_the_secret(
    rest: RestClient, pd: Recorder
) -> None:
    pd.handler = lambda request: httpx2.Response(
        201,
        json={
            "webhook_subscription": {
                "id": "PWH0001",
                "type": "webhook_subscription",
                "delivery_method": {
                    "type": "http_delivery_method",
                    "url": "https://vendor.example/pagerduty/webhooks/abc",
                    "secret": WEBHOOK_SECRET,
                },
            }
        },
    )
    events = ["incident.triggered", "incident.resolved", "service.deleted"]
    subscription = await rest.create_webhook_subscription(
        url="https://vendor.example/pagerduty/webhooks/abc",
        events=events,
        filter_type="service_reference",
        filter_id="PSVC0001",
    )
    assert subscription == WebhookSubscription(
        id="PWH0001", secret=WEBHOOK_SECRET, url="https://vendor.example/pagerduty/webhooks/abc"
    )
    assert WEBHOOK_SECRET not in repr(subscription)
    assert body(pd.requests[0]) == {
        "webhook_subscription": {
            "type": "webhook_subscription",
            "delivery_method": {
                "type": "http_delivery_method",
                "url": "https://vendor.example/pagerduty/webhooks/abc",
                "custom_headers": [],
            },
            "events": events,
            "filter": {"type": "service_reference", "id": "PSVC0001"},
        }
    }


async def test_account_wide_webhook_filter_has_no_id(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(
        201,
        json={
            "webhook_subscription": {
                "id": "PWH2",
                "delivery_method": {"url": "https://v.example/h", "secret": WEBHOOK_SECRET},
            }
        },
    )
    await rest.create_webhook_subscription(
        url="https://v.example/h",
        events=["incident.triggered"],
        filter_type="account_reference",
        filter_id=None,
    )
    assert body(pd.requests[0])["webhook_subscription"]["filter"] == {"type": "account_reference"}


async def test_delete_webhook_subscription(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(204)
    await rest.delete_webhook_subscription("PWH0001")
    (request,) = pd.requests
    assert (request.method, request.url.path) == ("DELETE", "/webhook_subscriptions/PWH0001")


# --- errors -----------------------------------------------------------------------------


def pd_error(message: str, errors: list[str] | None = None, code: int = 2001) -> dict[str, Any]:
    return {"error": {"message": message, "code": code, "errors": errors or []}}


@pytest.mark.parametrize("status", [400, 402, 422])
async def test_invalid_requests_carry_pagerdutys_messages(
    rest: RestClient, pd: Recorder, status: int
) -> None:
    pd.handler = lambda request: httpx2.Response(
        status, json=pd_error("Invalid Input Provided", ["Name has already been taken"])
    )
    with pytest.raises(InvalidRequest) as caught:
        await rest.create_service(name="Checkout", escalation_policy_id="PEP1")
    error = caught.value
    assert (error.status, error.code, error.message, error.errors) == (
        status,
        2001,
        "Invalid Input Provided",
        ("Name has already been taken",),
    )
    assert "Invalid Input Provided" in str(error)
    assert "Name has already been taken" in str(error)


@pytest.mark.parametrize(
    ("status", "expected"), [(401, Unauthorized), (403, Forbidden), (404, NotFound)]
)
async def test_access_errors_map_by_status(
    rest: RestClient, pd: Recorder, status: int, expected: type[PagerDutyError]
) -> None:
    pd.handler = lambda request: httpx2.Response(status, json=pd_error("Access Denied", code=2010))
    with pytest.raises(expected) as caught:
        await rest.list_services()
    assert getattr(caught.value, "message", None) == "Access Denied"
    assert "Access Denied" in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_unauthorized_tells_to_reconnect(rest: RestClient, pd: Recorder) -> None:
    pd.handler = lambda request: httpx2.Response(401, text="")
    with pytest.raises(Unauthorized, match="Reconnect"):
        await rest.list_services()


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"ratelimit-limit": "960", "ratelimit-remaining": "0", "ratelimit-reset": "17"}, 17.0),
        ({"retry-after": "5"}, 5.0),
        (
            {
                "retry-after": "Fri, 14 Mar 2025 12:00:30 GMT",
                "date": "Fri, 14 Mar 2025 12:00:00 GMT",
            },
            30.0,
        ),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
async def test_rate_limit_is_retry_later(
    rest: RestClient, pd: Recorder, headers: dict[str, str], retry_after: float | None
) -> None:
    pd.handler = lambda request: httpx2.Response(429, headers=headers)
    with pytest.raises(RetryLater) as caught:
        await rest.list_services()
    assert caught.value.retry_after == retry_after
    assert caught.value.status == 429


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retry_later(rest: RestClient, pd: Recorder, status: int) -> None:
    pd.handler = lambda request: httpx2.Response(status, text="<html>Bad gateway</html>")
    with pytest.raises(RetryLater) as caught:
        await rest.get_integration(service_id="PSVC1", integration_id="PINT1")
    assert caught.value.status == status
    assert type(caught.value) is RetryLater


@pytest.mark.parametrize(
    "failure",
    [
        httpx2.ConnectTimeout("slow"),
        httpx2.ReadTimeout("slow"),
        httpx2.ConnectError("refused"),
        httpx2.RemoteProtocolError("reset"),
    ],
)
async def test_transport_failures_are_retry_later(
    rest: RestClient, pd: Recorder, failure: Exception
) -> None:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise failure

    pd.handler = fail
    with pytest.raises(RetryLater) as caught:
        await rest.list_services()
    assert caught.value.__cause__ is failure


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        (httpx2.Response(200, text="<html>maintenance</html>"), "not JSON"),
        (httpx2.Response(200, json=[]), "the answer"),
        (httpx2.Response(200, json={"limit": 100}), "services"),
        (httpx2.Response(200, json={"services": [{"id": "P1"}, {"name": "x"}]}), "services[1].id"),
        (httpx2.Response(200, json={"services": [{"id": "P1", "name": 7}]}), "services[0].name"),
        (
            httpx2.Response(200, json={"services": [{"id": "P1", "integrations": [{}]}]}),
            "services[0].integrations[0].id",
        ),
    ],
)
async def test_malformed_answers_name_the_field(
    rest: RestClient, pd: Recorder, answer: httpx2.Response, named: str
) -> None:
    pd.handler = lambda request: answer
    with pytest.raises(MalformedResponse) as caught:
        await rest.list_services()
    assert named in str(caught.value)
    assert isinstance(caught.value, RetryLater)


def test_rest_client_repr_hides_the_token(http: httpx2.AsyncClient) -> None:
    rest = RestClient(http, API, TOKEN)
    assert TOKEN not in repr(rest)
    assert API in repr(rest)
