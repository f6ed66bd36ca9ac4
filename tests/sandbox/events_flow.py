"""Helpers for the Events API tests: seeded keys, event bodies, and sending them."""

from __future__ import annotations

from typing import Any

import httpx2

from pdsandbox import SandboxState
from pdsandbox.models import Integration

V2 = "/v2/enqueue"
CHANGE = "/v2/change/enqueue"
V1 = "/generic/2010-04-15/create_event.json"
EVENTS_V2 = "events_api_v2_inbound_integration"
EVENTS_V1 = "generic_events_api_inbound_integration"
UNKNOWN_KEY = "0123456789abcdef0123456789abcdef"


def integrations(
    state: SandboxState, type_: str, subdomain: str = "acme-corp"
) -> list[Integration]:
    account = state.account_by_subdomain(subdomain)
    assert account is not None
    return [
        i for i in state.integrations.values() if i.account_id == account.id and i.type == type_
    ]


def v2_key(state: SandboxState, n: int = 0) -> str:
    """The key of the n-th seeded Events API v2 integration at acme-corp."""
    return integrations(state, EVENTS_V2)[n].integration_key


def v1_key(state: SandboxState, n: int = 0) -> str:
    return integrations(state, EVENTS_V1)[n].integration_key


def ruleset_key(state: SandboxState, subdomain: str = "acme-corp") -> str:
    account = state.account_by_subdomain(subdomain)
    assert account is not None
    return state.rulesets_in(account.id)[0].routing_key


def eu_key(state: SandboxState) -> str:
    """A fresh Events API v2 integration on a globex-eu (EU) service."""
    account = state.account_by_subdomain("globex-eu")
    assert account is not None
    service = state.services_in(account.id)[0]
    return state.create_integration(service, EVENTS_V2, "EU", None).integration_key


def trigger(key: str, dedup_key: str | None = None, **payload: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "Disk full on db-1", "source": "db-1", "severity": "critical"}
        | payload,
    }
    if dedup_key is not None:
        body["dedup_key"] = dedup_key
    return body


def follow_up(key: str, action: str, dedup_key: str) -> dict[str, Any]:
    return {"routing_key": key, "event_action": action, "dedup_key": dedup_key}


def change(key: str, **payload: Any) -> dict[str, Any]:
    return {"routing_key": key, "payload": {"summary": "Deployed v42", "source": "ci"} | payload}


def v1_event(key: str, event_type: str = "trigger", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"service_key": key, "event_type": event_type}
    if event_type == "trigger":
        body["description"] = "Disk full on db-1"
    return body | fields


async def send(
    client: httpx2.AsyncClient, body: Any, path: str = V2, region: str = "us"
) -> httpx2.Response:
    return await client.post(f"/{region}/events{path}", json=body)


async def arrivals(client: httpx2.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/_sandbox/events", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return found


async def incidents(client: httpx2.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/_sandbox/incidents", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["incidents"]
    return found
