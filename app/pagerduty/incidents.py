"""PagerDuty REST API v2 calls about incidents, their notes, the token's own user and the state
of a webhook subscription: what reconciliation, notes and the subscription watch need.

Beside `rest.RestClient` (same token, headers and error translation) and not inside it, so
that each area keeps a module of its own size. `createIncidentNote` needs a `From` header (the
email of a user of the account), which the other calls never send.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

from app.pagerduty._http import raise_for_status, transport_errors
from app.pagerduty._wire import (
    as_list,
    as_object,
    optional_object,
    optional_str,
    read_json,
    required_str,
)
from app.pagerduty.errors import MalformedResponse
from app.pagerduty.rest import RestClient, _segment

INCIDENT_STATUSES = frozenset({"triggered", "acknowledged", "resolved"})
# Incidents asked for per lookup by key: the newest few are enough to find the open one.
INCIDENTS_PER_LOOKUP = 25


def _time(obj: Mapping[str, object], key: str, where: str) -> datetime | None:
    value = optional_str(obj, key, where)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedResponse(f"{where}.{key} is not a time") from exc
    if parsed.tzinfo is None:
        raise MalformedResponse(f"{where}.{key} has no time zone")
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Incident:
    id: str
    number: int | None
    status: str
    incident_key: str | None
    service_id: str
    title: str | None
    html_url: str | None
    created_at: datetime
    # When the status last changed and who changed it: what a webhook's `occurred_at` and
    # `agent` say for the same change.
    last_status_change_at: datetime
    last_status_change_by: str | None

    @classmethod
    def from_wire(cls, value: object, where: str = "incident") -> Self:
        obj = as_object(value, where)
        status = required_str(obj, "status", where)
        if status not in INCIDENT_STATUSES:
            raise MalformedResponse(f"{where}.status is not a known incident status")
        created_at = _time(obj, "created_at", where)
        if created_at is None:
            raise MalformedResponse(f"{where}.created_at is missing")
        number = obj.get("incident_number")
        changed_by = optional_object(obj, "last_status_change_by", where)
        return cls(
            id=required_str(obj, "id", where),
            number=number if type(number) is int else None,
            status=status,
            incident_key=optional_str(obj, "incident_key", where),
            service_id=required_str(
                as_object(obj.get("service"), f"{where}.service"), "id", f"{where}.service"
            ),
            title=optional_str(obj, "title", where),
            html_url=optional_str(obj, "html_url", where),
            created_at=created_at,
            last_status_change_at=_time(obj, "last_status_change_at", where) or created_at,
            last_status_change_by=optional_str(
                changed_by, "summary", f"{where}.last_status_change_by"
            ),
        )


@dataclass(frozen=True)
class Note:
    id: str
    content: str
    created_at: datetime
    # The user's name (`user.summary`), or the service's for a note a service made.
    author: str | None

    @classmethod
    def from_wire(cls, value: object, where: str = "note") -> Self:
        obj = as_object(value, where)
        created_at = _time(obj, "created_at", where)
        if created_at is None:
            raise MalformedResponse(f"{where}.created_at is missing")
        content = obj.get("content")
        if not isinstance(content, str):
            raise MalformedResponse(f"{where}.content is missing or not a string")
        user = optional_object(obj, "user", where)
        return cls(
            id=required_str(obj, "id", where),
            content=content,
            created_at=created_at,
            author=optional_str(user, "summary", f"{where}.user"),
        )


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str

    @classmethod
    def from_wire(cls, value: object, where: str = "user") -> Self:
        obj = as_object(value, where)
        user_id = required_str(obj, "id", where)
        return cls(
            id=user_id,
            name=optional_str(obj, "name", where) or user_id,
            email=required_str(obj, "email", where),
        )


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    # False when its owner switched it off, and (in some answers) while PagerDuty keeps it
    # disabled after failed deliveries: `temporarily_disabled` tells the two apart.
    active: bool
    temporarily_disabled: bool
    events: tuple[str, ...]

    @classmethod
    def from_wire(cls, value: object, where: str = "webhook_subscription") -> Self:
        obj = as_object(value, where)
        delivery = optional_object(obj, "delivery_method", where)
        events = obj.get("events")
        return cls(
            id=required_str(obj, "id", where),
            # PagerDuty's document gives `active` a default of true: absent reads as on.
            active=obj.get("active") is not False,
            temporarily_disabled=delivery.get("temporarily_disabled") is True,
            events=tuple(
                e
                for e in ([] if events is None else as_list(events, f"{where}.events"))
                if isinstance(e, str)
            ),
        )


class IncidentsClient(RestClient):
    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | Sequence[str]] | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> Mapping[str, object]:
        async with transport_errors("PagerDuty's REST API"):
            response = await self._http.request(
                method,
                f"{self._api_url}{path}",
                params=params,
                json=body,
                headers={**self._headers, **(headers or {})},
            )
        raise_for_status(response)
        return as_object(read_json(response), "the answer")

    async def get_incident(self, incident_id: str) -> Incident:
        answer = await self._send("GET", f"/incidents/{_segment(incident_id)}")
        return Incident.from_wire(answer.get("incident"))

    async def incidents_by_key(self, *, incident_key: str, service_id: str) -> list[Incident]:
        """The service's incidents of this key, newest first, whenever they were opened
        (`date_range=all`: without it PagerDuty lists only the last month's)."""
        answer = await self._send(
            "GET",
            "/incidents",
            params={
                "incident_key": incident_key,
                "service_ids[]": [service_id],
                "date_range": "all",
                "sort_by": "created_at:desc",
                "limit": INCIDENTS_PER_LOOKUP,
            },
        )
        found = as_list(answer.get("incidents"), "incidents")
        incidents = [Incident.from_wire(v, f"incidents[{i}]") for i, v in enumerate(found)]
        # Newest first whatever the server's sort: the order decides which one is current.
        return sorted(incidents, key=lambda i: i.created_at, reverse=True)

    async def create_note(self, incident_id: str, *, content: str, from_email: str) -> Note:
        answer = await self._send(
            "POST",
            f"/incidents/{_segment(incident_id)}/notes",
            body={"note": {"content": content}},
            headers={"From": from_email},
        )
        return Note.from_wire(answer.get("note"))

    async def current_user(self) -> User:
        answer = await self._send("GET", "/users/me")
        return User.from_wire(answer.get("user"))

    async def get_webhook_subscription(self, subscription_id: str) -> SubscriptionState:
        answer = await self._send("GET", f"/webhook_subscriptions/{_segment(subscription_id)}")
        return SubscriptionState.from_wire(answer.get("webhook_subscription"))

    async def enable_webhook_subscription(self, subscription_id: str) -> SubscriptionState:
        """Ends PagerDuty's temporary disable after failed deliveries (no body)."""
        answer = await self._send(
            "POST", f"/webhook_subscriptions/{_segment(subscription_id)}/enable"
        )
        return SubscriptionState.from_wire(answer.get("webhook_subscription"))

    async def update_webhook_subscription(
        self, subscription_id: str, *, active: bool, events: Sequence[str]
    ) -> SubscriptionState:
        answer = await self._send(
            "PUT",
            f"/webhook_subscriptions/{_segment(subscription_id)}",
            body={
                "webhook_subscription": {
                    "active": active,
                    "events": list(dict.fromkeys(events)),
                }
            },
        )
        return SubscriptionState.from_wire(answer.get("webhook_subscription"))
