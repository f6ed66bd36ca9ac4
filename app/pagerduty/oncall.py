"""PagerDuty REST reads for who is on call and for a connection's health check, with one
account's OAuth access token: a service's escalation policy, the policy's levels, who is on
call on them now (`GET /oncalls`), the token's own user, and a webhook subscription's state.

A subclass of the REST client, so it shares its headers, error mapping and transport errors;
it adds a GET that repeats array parameters (`escalation_policy_ids[]=A&…=B`), which the
client's own mapping of parameters cannot express.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Self

import httpx2

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
from app.pagerduty.models import Service
from app.pagerduty.rest import API_ACCEPT, PAGE_LIMIT, RestClient, _segment

# Policies named in one GET /oncalls: keeps its URL short whatever the tenant connected.
POLICIES_PER_REQUEST = 20
# A policy has a handful of levels with a few targets each; 10 000 entries would be a loop.
MAX_ONCALL_PAGES = 100


def _time(obj: object, key: str, where: str) -> datetime | None:
    value = optional_str(as_object(obj, where), key, where)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedResponse(f"{where}.{key} is not a date-time") from exc


@dataclass(frozen=True)
class Target:
    """Whom a level pages: a schedule (whoever is on it now) or a user directly."""

    type: str  # "schedule" or "user"
    id: str
    name: str

    @classmethod
    def from_wire(cls, value: object, where: str) -> Self:
        obj = as_object(value, where)
        kind = required_str(obj, "type", where)
        target_id = required_str(obj, "id", where)
        name = optional_str(obj, "name", where) or optional_str(obj, "summary", where)
        return cls(
            type=kind.removesuffix("_reference"),
            id=target_id,
            name=name or target_id,
        )


@dataclass(frozen=True)
class Level:
    number: int
    delay_minutes: int | None
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class PolicyLevels:
    id: str
    name: str
    levels: tuple[Level, ...]

    @classmethod
    def from_wire(cls, value: object, where: str = "escalation_policy") -> Self:
        obj = as_object(value, where)
        policy_id = required_str(obj, "id", where)
        rules = obj.get("escalation_rules")
        levels = []
        for n, rule in enumerate([] if rules is None else as_list(rules, f"{where}.rules")):
            rule_where = f"{where}.escalation_rules[{n}]"
            rule_obj = as_object(rule, rule_where)
            delay = rule_obj.get("escalation_delay_in_minutes")
            targets = as_list(rule_obj.get("targets", []), f"{rule_where}.targets")
            levels.append(
                Level(
                    number=n + 1,
                    delay_minutes=delay
                    if isinstance(delay, int) and not isinstance(delay, bool)
                    else None,
                    targets=tuple(
                        Target.from_wire(t, f"{rule_where}.targets[{i}]")
                        for i, t in enumerate(targets)
                    ),
                )
            )
        name = optional_str(obj, "name", where) or optional_str(obj, "summary", where)
        return cls(id=policy_id, name=name or policy_id, levels=tuple(levels))


@dataclass(frozen=True)
class OnCall:
    """One on-call entry: a user on a level of a policy, through a schedule (None: targeted
    directly, on call for good), from `start` until `end` (both None when for good)."""

    policy_id: str
    level: int
    user_id: str
    user_name: str
    user_email: str | None
    schedule_id: str | None
    schedule_name: str | None
    start: datetime | None
    end: datetime | None

    @classmethod
    def from_wire(cls, value: object, where: str) -> Self:
        obj = as_object(value, where)
        policy = as_object(obj.get("escalation_policy"), f"{where}.escalation_policy")
        user = as_object(obj.get("user"), f"{where}.user")
        schedule = optional_object(obj, "schedule", where)
        level = obj.get("escalation_level")
        if not isinstance(level, int) or isinstance(level, bool):
            raise MalformedResponse(f"{where}.escalation_level is not an integer")
        user_id = required_str(user, "id", f"{where}.user")
        return cls(
            policy_id=required_str(policy, "id", f"{where}.escalation_policy"),
            level=level,
            user_id=user_id,
            # With include[]=users the user is whole; a reference has only its summary.
            user_name=optional_str(user, "name", f"{where}.user")
            or optional_str(user, "summary", f"{where}.user")
            or user_id,
            user_email=optional_str(user, "email", f"{where}.user"),
            schedule_id=optional_str(schedule, "id", f"{where}.schedule"),
            schedule_name=optional_str(schedule, "name", f"{where}.schedule")
            or optional_str(schedule, "summary", f"{where}.schedule"),
            start=_time(obj, "start", where),
            end=_time(obj, "end", where),
        )


@dataclass(frozen=True)
class CurrentUser:
    id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    active: bool
    # PagerDuty switched it off for a day after repeated refused deliveries.
    temporarily_disabled: bool


@dataclass(frozen=True)
class Probe:
    """An answer to GET /users/me and how long it took, whatever its status."""

    status: int
    latency_ms: int
    response: httpx2.Response


class OnCallClient(RestClient):
    def __init__(self, http: httpx2.AsyncClient, api_url: str, access_token: str | None) -> None:
        """`access_token` None: only `probe` is of use (PagerDuty answers 401, which still
        shows that it is reachable)."""
        super().__init__(http, api_url, access_token or "")
        if access_token is None:
            self._headers = {"Accept": API_ACCEPT}

    async def _get(self, path: str, params: Sequence[tuple[str, str | int]] = ()) -> object:
        async with transport_errors("PagerDuty's REST API"):
            response = await self._http.get(
                f"{self._api_url}{path}", params=list(params), headers=self._headers
            )
        raise_for_status(response)
        return read_json(response)

    async def probe(self) -> Probe:
        """GET /users/me, timed; transport errors raise RetryLater, any answer returns."""
        started = time.perf_counter()
        async with transport_errors("PagerDuty's REST API"):
            response = await self._http.get(f"{self._api_url}/users/me", headers=self._headers)
        latency = int((time.perf_counter() - started) * 1000)
        return Probe(status=response.status_code, latency_ms=latency, response=response)

    @staticmethod
    def current_user(probe: Probe) -> CurrentUser:
        raise_for_status(probe.response)
        user = as_object(as_object(read_json(probe.response), "the answer").get("user"), "user")
        return CurrentUser(
            id=required_str(user, "id", "user"),
            name=optional_str(user, "name", "user") or required_str(user, "id", "user"),
            email=optional_str(user, "email", "user"),
        )

    async def get_service(self, service_id: str) -> Service:
        answer = await self._get(f"/services/{_segment(service_id)}")
        return Service.from_wire(as_object(answer, "the answer").get("service"))

    async def get_escalation_policy(self, policy_id: str) -> PolicyLevels:
        answer = await self._get(f"/escalation_policies/{_segment(policy_id)}")
        return PolicyLevels.from_wire(as_object(answer, "the answer").get("escalation_policy"))

    async def list_oncalls(self, policy_ids: Sequence[str]) -> list[OnCall]:
        """Who is on call now on each level of these policies: with `earliest=true`, one entry
        per policy, level and user (the shift in progress), users whole for names and emails."""
        found: list[OnCall] = []
        ids = list(dict.fromkeys(policy_ids))
        for start in range(0, len(ids), POLICIES_PER_REQUEST):
            chunk = ids[start : start + POLICIES_PER_REQUEST]
            offset = 0
            for _ in range(MAX_ONCALL_PAGES):
                params: list[tuple[str, str | int]] = [
                    *(("escalation_policy_ids[]", p) for p in chunk),
                    ("earliest", "true"),
                    ("include[]", "users"),
                    ("limit", PAGE_LIMIT),
                    ("offset", offset),
                ]
                answer = as_object(await self._get("/oncalls", params), "the answer")
                page = as_list(answer.get("oncalls"), "oncalls")
                found += [
                    OnCall.from_wire(item, f"oncalls[{i}]")
                    for i, item in enumerate(page, start=offset)
                ]
                offset += len(page)
                if answer.get("more") is not True or not page:
                    break
        return found

    async def get_webhook_subscription(self, subscription_id: str) -> SubscriptionState:
        answer = await self._get(f"/webhook_subscriptions/{_segment(subscription_id)}")
        where = "webhook_subscription"
        sub = as_object(as_object(answer, "the answer").get(where), where)
        delivery = optional_object(sub, "delivery_method", where)
        active = sub.get("active")
        disabled = delivery.get("temporarily_disabled")
        return SubscriptionState(
            id=required_str(sub, "id", where),
            # Absent reads as on: PagerDuty's document marks neither member required.
            active=active is not False,
            temporarily_disabled=disabled is True,
        )
