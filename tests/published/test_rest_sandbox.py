"""The sandbox's REST answers against PagerDuty's REST API document (REST.json, see
`rest_documented`), for every call pdconnect makes and the reads beside them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx2
import pytest

from tests.published import rest_documented as doc
from tests.published.conftest import Api
from tests.published.shapes import Value, conforms
from tests.sandbox.events_flow import follow_up, send, trigger
from tests.sandbox.flow import bearer, connect

EVENTS_V2 = "events_api_v2_inbound_integration"
# listServices without `include[]=integrations`: integrations come as references.
LIST_SERVICES_PLAIN = replace(
    doc.LIST_SERVICES, answer=doc.listed("services", doc.service(full_integrations=False))
)


def answered(response: httpx2.Response, op: doc.Operation) -> Any:
    """The body of a successful answer, after checking status and shape against `op`."""
    assert response.status_code == op.success, (op.operation_id, response.text)
    if op.answer is None:
        assert response.content == b""
        return None
    body = response.json()
    conforms(body, op.answer)
    return body


def request_of(op: doc.Operation) -> Value:
    assert op.request is not None, f"{op.operation_id} documents no request body"
    return op.request


def refused(response: httpx2.Response, status: int) -> dict[str, Any]:
    """An error answer: the status asked for, in REST.json's error body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    conforms(body, doc.ERROR)
    return body


async def some_service_id(api: Api) -> str:
    body = answered(await api("GET", "/services", limit=1), LIST_SERVICES_PLAIN)
    service_id: str = body["services"][0]["id"]
    return service_id


async def new_integration(api: Api, service_id: str) -> dict[str, Any]:
    request = {
        "integration": {
            "type": EVENTS_V2,
            "name": "pdconnect",
            "service": {"id": service_id, "type": "service_reference"},
        }
    }
    created = await api("POST", f"/services/{service_id}/integrations", json=request)
    integration: dict[str, Any] = answered(created, doc.CREATE_INTEGRATION)["integration"]
    return integration


# Services


async def test_list_services_as_pdconnect_asks(api: Api) -> None:
    """listServices with `include[]=integrations`: full integrations, each v2 one with its key."""
    response = await api("GET", "/services", limit=100, offset=0, **{"include[]": "integrations"})

    body = answered(response, doc.LIST_SERVICES)
    assert len(body["services"]) == 100
    v2 = [i for s in body["services"] for i in s["integrations"] if i["type"] == EVENTS_V2]
    assert v2, "the seed has Events API v2 integrations"
    assert all(len(i["integration_key"]) == doc.INTEGRATION_KEY_LENGTH for i in v2)


async def test_list_services_without_include_gives_integration_references(api: Api) -> None:
    """REST.json listServices, Service.integrations: references unless `include[]` asks."""
    response = await api("GET", "/services", limit=100)

    answered(response, LIST_SERVICES_PLAIN)
    assert all(
        i["type"].endswith("_reference") and "integration_key" not in i
        for s in response.json()["services"]
        for i in s["integrations"]
    )


async def test_pagination_members_follow_the_document(api: Api) -> None:
    """#/components/schemas/Pagination: limit and offset echoed, `more`, `total` null unless
    `total=true` asked for it."""
    first = answered(await api("GET", "/services", limit=100, offset=0), LIST_SERVICES_PLAIN)
    last = answered(await api("GET", "/services", limit=100, offset=100), LIST_SERVICES_PLAIN)
    counted = answered(await api("GET", "/services", total="true"), LIST_SERVICES_PLAIN)

    assert (first["limit"], first["offset"], first["more"], first["total"]) == (100, 0, True, None)
    assert (last["offset"], last["more"]) == (100, False)
    assert counted["total"] == len(first["services"]) + len(last["services"])


async def test_sort_by_name_desc_reverses_the_default_order(api: Api) -> None:
    """#/components/parameters/sort_by_service: name, name:asc, name:desc; default name."""
    default = answered(await api("GET", "/services", limit=100, total="true"), LIST_SERVICES_PLAIN)
    asc = answered(
        await api("GET", "/services", limit=100, sort_by="name:asc"), LIST_SERVICES_PLAIN
    )
    total = default["total"]
    desc = answered(
        await api("GET", "/services", limit=100, offset=total - 100, sort_by="name:desc"),
        LIST_SERVICES_PLAIN,
    )
    names = [s["name"] for s in default["services"]]

    assert names == sorted(names, key=str.lower)
    assert [s["name"] for s in asc["services"]] == names
    assert [s["name"] for s in desc["services"]] == names[::-1]
    refused(await api("GET", "/services", sort_by="created_at"), 400)


async def test_name_filter_keeps_only_that_name(api: Api) -> None:
    """#/components/parameters/service_name: "only services with the specified name"."""
    some = answered(await api("GET", "/services", limit=1), LIST_SERVICES_PLAIN)["services"][0]

    body = answered(await api("GET", "/services", name=some["name"]), LIST_SERVICES_PLAIN)

    assert [s["id"] for s in body["services"]] == [some["id"]]


async def test_get_service_and_unknown_service(api: Api) -> None:
    """REST.json getService: 200 `{"service": ...}`, 404 for an unknown id."""
    service_id = await some_service_id(api)

    answered(await api("GET", f"/services/{service_id}"), doc.GET_SERVICE)
    refused(await api("GET", "/services/PNOSUCH"), 404)


async def test_create_service_answers_201(api: Api) -> None:
    """REST.json createService: 201 `{"service": ...}`, a new service is `active`."""
    request = {
        "service": {
            "type": "service",
            "name": "Checkout (pdconnect)",
            "escalation_policy": {"id": "PEPAC01", "type": "escalation_policy_reference"},
        }
    }
    conforms(request, request_of(doc.CREATE_SERVICE))

    body = answered(await api("POST", "/services", json=request), doc.CREATE_SERVICE)

    assert body["service"]["status"] == "active"
    assert body["service"]["last_incident_timestamp"] is None


@pytest.mark.parametrize(("status", "code"), [("active", 201), ("disabled", 400)])
async def test_create_service_takes_only_active_status(api: Api, status: str, code: int) -> None:
    """createService: "If `status` is included in the request, it must have a value of
    `active`"."""
    request = {
        "service": {
            "type": "service",
            "name": f"With status {status}",
            "status": status,
            "escalation_policy": {"id": "PEPAC01", "type": "escalation_policy_reference"},
        }
    }

    response = await api("POST", "/services", json=request)

    if code == 201:
        answered(response, doc.CREATE_SERVICE)
    else:
        refused(response, code)


async def test_service_status_follows_its_incidents(api: Api, client: httpx2.AsyncClient) -> None:
    """#/components/schemas/Service `status`: critical with a triggered incident, warning with
    an acknowledged one, active with none open; `last_incident_timestamp` once there was one."""
    service_id = await some_service_id(api)
    key = (await new_integration(api, service_id))["integration_key"]

    async def status() -> tuple[str, str | None]:
        body = answered(await api("GET", f"/services/{service_id}"), doc.GET_SERVICE)
        return body["service"]["status"], body["service"]["last_incident_timestamp"]

    before = await status()
    assert (await send(client, trigger(key, "disk-1"))).status_code == 202
    triggered = await status()
    assert (await send(client, follow_up(key, "acknowledge", "disk-1"))).status_code == 202
    acknowledged = await status()
    assert (await send(client, follow_up(key, "resolve", "disk-1"))).status_code == 202
    resolved = await status()

    assert before == ("active", None)
    assert triggered[0] == "critical"
    assert triggered[1] is not None
    assert acknowledged == ("warning", triggered[1])
    assert resolved == ("active", triggered[1])


# Integrations


async def test_integration_create_read_delete(api: Api) -> None:
    """REST.json createServiceIntegration (201) and getServiceIntegration (200, 404); the
    DELETE is not in the document (see DELETE_INTEGRATION)."""
    service_id = await some_service_id(api)
    integration = await new_integration(api, service_id)
    path = f"/services/{service_id}/integrations/{integration['id']}"

    read = answered(await api("GET", path), doc.GET_INTEGRATION)["integration"]
    answered(await api("DELETE", path), doc.DELETE_INTEGRATION)

    assert integration["type"] == EVENTS_V2
    assert integration["service"]["id"] == service_id
    assert len(integration["integration_key"]) == doc.INTEGRATION_KEY_LENGTH
    assert read["integration_key"] == integration["integration_key"]
    refused(await api("GET", path), 404)
    refused(await api("DELETE", path), 404)


# Escalation policies


async def test_escalation_policies_list_and_read(api: Api) -> None:
    """REST.json listEscalationPolicies (with sort_by_escalation_policy) and
    getEscalationPolicy."""
    listed = answered(await api("GET", "/escalation_policies"), doc.LIST_ESCALATION_POLICIES)
    policy_id = listed["escalation_policies"][0]["id"]
    desc = answered(
        await api("GET", "/escalation_policies", sort_by="name:desc"),
        doc.LIST_ESCALATION_POLICIES,
    )

    answered(await api("GET", f"/escalation_policies/{policy_id}"), doc.GET_ESCALATION_POLICY)
    names = [p["name"] for p in listed["escalation_policies"]]
    assert [p["name"] for p in desc["escalation_policies"]] == names[::-1]
    refused(await api("GET", "/escalation_policies/PNOSUCH"), 404)


# Webhook subscriptions


def subscription_request(service_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "webhook_subscription": {
            "type": "webhook_subscription",
            "delivery_method": {
                "type": "http_delivery_method",
                "url": "https://vendor.example/pagerduty/webhooks/1",
                "custom_headers": [{"name": "X-Tenant", "value": "t-1"}],
            },
            "events": ["incident.triggered", "incident.resolved", "service.deleted"],
            "filter": {"type": "service_reference", "id": service_id},
        }
        | overrides
    }


async def test_webhook_subscription_lifecycle(api: Api) -> None:
    """createWebhookSubscription answers 200 with the secret, shown that once; custom header
    values are redacted; get, list (with filter_type/filter_id) and delete as documented."""
    service_id = await some_service_id(api)
    request = subscription_request(service_id)
    conforms(request, request_of(doc.CREATE_WEBHOOK_SUBSCRIPTION))

    created = answered(
        await api("POST", "/webhook_subscriptions", json=request),
        doc.CREATE_WEBHOOK_SUBSCRIPTION,
    )["webhook_subscription"]
    path = f"/webhook_subscriptions/{created['id']}"
    read = answered(await api("GET", path), doc.GET_WEBHOOK_SUBSCRIPTION)["webhook_subscription"]
    mine = answered(
        await api("GET", "/webhook_subscriptions", filter_type="service", filter_id=service_id),
        doc.LIST_WEBHOOK_SUBSCRIPTIONS,
    )
    others = answered(
        await api("GET", "/webhook_subscriptions", filter_type="service", filter_id="PNOSUCH"),
        doc.LIST_WEBHOOK_SUBSCRIPTIONS,
    )

    assert created["delivery_method"]["secret"]
    assert read["delivery_method"]["secret"] is None
    for shown in (created, read):
        headers = shown["delivery_method"]["custom_headers"]
        assert headers == [{"name": "X-Tenant", "value": doc.REDACTED_HEADER_VALUE}]
    assert [s["id"] for s in mine["webhook_subscriptions"]] == [created["id"]]
    assert others["webhook_subscriptions"] == []
    answered(await api("DELETE", path), doc.DELETE_WEBHOOK_SUBSCRIPTION)
    refused(await api("GET", path), 404)
    refused(await api("DELETE", path), 404)


@pytest.mark.parametrize(
    "overrides",
    [
        {"events": []},  # minItems 1
        {"events": ["incident.triggered", "incident.triggered"]},  # uniqueItems
        {"filter": {"type": "service_reference"}},  # id required but for account_reference
        {"filter": {"type": "escalation_policy_reference", "id": "PEPAC01"}},  # filter.type enum
        {"delivery_method": {"type": "http_delivery_method"}},  # url required
        {"type": "webhook"},  # type enum
    ],
)
async def test_webhook_subscription_outside_the_schema_is_400(
    api: Api, overrides: dict[str, Any]
) -> None:
    """REST.json createWebhookSubscription, #/components/schemas/WebhookSubscription."""
    request = subscription_request(await some_service_id(api), **overrides)

    refused(await api("POST", "/webhook_subscriptions", json=request), 400)


async def test_webhook_list_filter_type_must_be_documented(api: Api) -> None:
    """REST.json listWebhookSubscriptions: `filter_type` is account, service or team;
    `filter_id` is "Required if filter_type is service or team"."""
    refused(await api("GET", "/webhook_subscriptions", filter_type="service_reference"), 400)
    refused(await api("GET", "/webhook_subscriptions", filter_type="service"), 400)  # no id
    answered(
        await api("GET", "/webhook_subscriptions", filter_type="account"),
        doc.LIST_WEBHOOK_SUBSCRIPTIONS,
    )


# Errors


async def test_each_error_answer_has_the_documented_body(
    client: httpx2.AsyncClient, api: Api
) -> None:
    """#/components/responses/Conflict shape for 400, 401, 403, 404 and 429."""
    read_only = (await connect(client, scope="read"))["access_token"]
    create = {"service": {"type": "service", "name": "x", "escalation_policy": {}}}

    refused(await api("GET", "/services", limit="many"), 400)
    refused(await client.get("/us/api/services", headers={"Accept": doc.ACCEPT}), 401)
    refused(await client.post("/us/api/services", json=create, headers=bearer(read_only)), 403)
    refused(await api("GET", "/services/PNOSUCH/integrations/PNOSUCH"), 404)
    await client.post("/_sandbox/control", json={"rest_rate_limit": 1})
    await api("GET", "/services")
    refused(await api("GET", "/services"), 429)
