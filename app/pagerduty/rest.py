"""PagerDuty REST API v2, with one account's OAuth access token.

Only the calls pdconnect makes: read services and escalation policies, create a service and
an Events API v2 integration on it, subscribe to webhooks, and undo what it created.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import quote

import httpx2

from app.pagerduty._http import raise_for_status, transport_errors
from app.pagerduty._wire import as_list, as_object, read_json
from app.pagerduty.errors import InvalidRequest, MalformedResponse
from app.pagerduty.models import EscalationPolicy, Integration, Service, WebhookSubscription

API_ACCEPT = "application/vnd.pagerduty+json;version=2"
EVENTS_INTEGRATION_TYPE = "events_api_v2_inbound_integration"
PAGE_LIMIT = 100
# PagerDuty answers 400 to a classic-pagination request with offset + limit above this.
MAX_OFFSET_PLUS_LIMIT = 10_000

T = TypeVar("T", Service, EscalationPolicy)


def _segment(value: str) -> str:
    """An id as one path segment: an id holding '/' or being '..' must not reach another
    path (ids can arrive from a form)."""
    if value in ("", ".", ".."):
        raise InvalidRequest(f"{value!r} is not a PagerDuty id")
    return quote(value, safe="")


class RestClient:
    def __init__(self, http: httpx2.AsyncClient, api_url: str, access_token: str) -> None:
        self._http = http
        self._api_url = api_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {access_token}",
            "Accept": API_ACCEPT,
            "Content-Type": "application/json",
        }

    def __repr__(self) -> str:
        return f"RestClient(api_url={self._api_url!r})"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: object = None,
    ) -> object:
        """The parsed JSON answer, or None for an empty one (204 to a DELETE)."""
        async with transport_errors("PagerDuty's REST API"):
            response = await self._http.request(
                method,
                f"{self._api_url}{path}",
                params=params,
                json=body,
                headers=self._headers,
            )
        raise_for_status(response)
        if response.status_code == 204 or not response.content:
            return None
        return read_json(response)

    async def _list(
        self,
        path: str,
        member: str,
        parse: Callable[[object, str], T],
        params: Mapping[str, str] | None = None,
    ) -> list[T]:
        """Every item of a classic-paginated list, following `more` up to PagerDuty's bound.

        The offset advances by what arrived (PagerDuty may send less than asked), and an item
        seen twice (the list shifting between pages) is kept once."""
        found: dict[str, T] = {}
        offset = 0
        while (limit := min(PAGE_LIMIT, MAX_OFFSET_PLUS_LIMIT - offset)) > 0:
            answer = as_object(
                await self._call(
                    "GET", path, params={**(params or {}), "limit": limit, "offset": offset}
                ),
                "the answer",
            )
            page = as_list(answer.get(member), member)
            for index, value in enumerate(page, start=offset):
                item = parse(value, f"{member}[{index}]")
                found.setdefault(item.id, item)
            offset += len(page)
            if answer.get("more") is not True or not page:
                break
        return list(found.values())

    async def list_services(self) -> list[Service]:
        return await self._list(
            "/services", "services", Service.from_wire, {"include[]": "integrations"}
        )

    async def list_escalation_policies(self) -> list[EscalationPolicy]:
        return await self._list(
            "/escalation_policies", "escalation_policies", EscalationPolicy.from_wire
        )

    async def create_service(self, *, name: str, escalation_policy_id: str) -> Service:
        answer = await self._call(
            "POST",
            "/services",
            body={
                "service": {
                    "type": "service",
                    "name": name,
                    "escalation_policy": {
                        "id": escalation_policy_id,
                        "type": "escalation_policy_reference",
                    },
                }
            },
        )
        return Service.from_wire(as_object(answer, "the answer").get("service"))

    async def create_events_integration(self, *, service_id: str, name: str) -> Integration:
        answer = await self._call(
            "POST",
            f"/services/{_segment(service_id)}/integrations",
            body={
                "integration": {
                    "type": EVENTS_INTEGRATION_TYPE,
                    "name": name,
                    "service": {"id": service_id, "type": "service_reference"},
                }
            },
        )
        integration = Integration.from_wire(
            as_object(answer, "the answer").get("integration"), service_id=service_id
        )
        if integration.integration_key is None:
            # Without its key the new integration is useless to us.
            raise MalformedResponse("the new integration has no integration_key")
        return integration

    async def get_integration(self, *, service_id: str, integration_id: str) -> Integration:
        answer = await self._call(
            "GET", f"/services/{_segment(service_id)}/integrations/{_segment(integration_id)}"
        )
        return Integration.from_wire(
            as_object(answer, "the answer").get("integration"), service_id=service_id
        )

    async def delete_integration(self, *, service_id: str, integration_id: str) -> None:
        # Missing from PagerDuty's OpenAPI document (it lists only GET and PUT on this path),
        # but served: PagerDuty's own Go client and Terraform provider delete this way.
        await self._call(
            "DELETE",
            f"/services/{_segment(service_id)}/integrations/{_segment(integration_id)}",
        )

    async def create_webhook_subscription(
        self, *, url: str, events: Sequence[str], filter_type: str, filter_id: str | None
    ) -> WebhookSubscription:
        """`filter_type` is service_reference, team_reference (both with `filter_id`) or
        account_reference (without). The answer holds the signing secret, shown only once."""
        webhook_filter: dict[str, str] = {"type": filter_type}
        if filter_id is not None:
            webhook_filter["id"] = filter_id
        answer = await self._call(
            "POST",
            "/webhook_subscriptions",
            body={
                "webhook_subscription": {
                    "type": "webhook_subscription",
                    "delivery_method": {
                        "type": "http_delivery_method",
                        "url": url,
                        "custom_headers": [],
                    },
                    # The schema says `uniqueItems`: a repeated type may be refused.
                    "events": list(dict.fromkeys(events)),
                    "filter": webhook_filter,
                }
            },
        )
        return WebhookSubscription.from_wire(
            as_object(answer, "the answer").get("webhook_subscription")
        )

    async def delete_webhook_subscription(self, subscription_id: str) -> None:
        await self._call("DELETE", f"/webhook_subscriptions/{_segment(subscription_id)}")
