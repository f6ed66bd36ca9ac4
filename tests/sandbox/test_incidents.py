"""Alerts and incidents opened, acknowledged and resolved by Events API v2 events."""

from __future__ import annotations

import httpx2
import pytest

from pdsandbox import SandboxState
from pdsandbox.events.incidents import Incident
from pdsandbox.models import Integration
from pdsandbox.timefmt import iso
from tests.sandbox.events_flow import follow_up, incidents, send, trigger, v2_key
from tests.sandbox.flow import FakeClock


async def test_trigger_ack_resolve_then_trigger_again_opens_a_new_incident(
    client: httpx2.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    key = v2_key(state)
    start = clock.now
    await send(client, trigger(key, "disk/db-1", severity="error"))
    clock.now += 10
    await send(client, follow_up(key, "acknowledge", "disk/db-1"))
    clock.now += 10
    await send(client, follow_up(key, "resolve", "disk/db-1"))
    await send(client, trigger(key, "disk/db-1", summary="Disk full again"))

    first, second = await incidents(client, subdomain="acme-corp")

    assert first["status"] == "resolved"
    assert first["incident_key"] == "disk/db-1"
    assert first["title"] == "Disk full on db-1"
    assert first["urgency"] == "high"
    assert (first["created_at"], first["acknowledged_at"], first["resolved_at"]) == (
        iso(start),
        iso(start + 10),
        iso(start + 20),
    )
    assert [e["type"] for e in first["log_entries"]] == [
        "trigger_log_entry",
        "acknowledge_log_entry",
        "resolve_log_entry",
    ]
    assert second["status"] == "triggered"
    assert second["title"] == "Disk full again"
    assert second["id"] != first["id"]
    assert second["id"].startswith("P")
    assert second["incident_number"] == first["incident_number"] + 1


async def test_repeated_triggers_are_duplicates_of_the_open_alert(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)
    await send(client, trigger(key, "cpu"))
    await send(client, follow_up(key, "acknowledge", "cpu"))
    await send(client, trigger(key, "cpu", summary="CPU still high"))

    (incident,) = await incidents(client)

    assert incident["status"] == "acknowledged"  # a duplicate does not re-trigger it
    assert incident["alert"]["trigger_count"] == 2
    assert incident["log_entry_count"] == 3


async def test_follow_ups_with_no_open_alert_do_nothing(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)

    ack = await send(client, follow_up(key, "acknowledge", "never-triggered"))
    resolve = await send(client, follow_up(key, "resolve", "never-triggered"))

    assert (ack.status_code, resolve.status_code) == (202, 202)
    assert await incidents(client) == []


async def test_follow_ups_through_another_routing_key_do_nothing(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    mine, other = v2_key(state, 0), v2_key(state, 1)
    await send(client, trigger(mine, "shared"))

    ack = await send(client, follow_up(other, "acknowledge", "shared"))
    resolve = await send(client, follow_up(other, "resolve", "shared"))

    assert (ack.status_code, resolve.status_code) == (202, 202)
    (incident,) = await incidents(client)
    assert incident["status"] == "triggered"
    assert incident["routing_key"] == mine


async def test_triggers_without_dedup_key_always_open_new_incidents(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)
    keys = [(await send(client, trigger(key))).json()["dedup_key"] for _ in range(3)]

    found = await incidents(client)

    assert [i["incident_key"] for i in found] == keys
    assert len(set(keys)) == 3


@pytest.mark.parametrize(
    ("severity", "urgency"),
    [("critical", "high"), ("error", "high"), ("warning", "low"), ("info", "low")],
)
async def test_urgency_follows_severity(
    client: httpx2.AsyncClient, state: SandboxState, severity: str, urgency: str
) -> None:
    await send(client, trigger(v2_key(state), "k", severity=severity))

    (incident,) = await incidents(client)

    assert incident["urgency"] == urgency
    assert incident["alert"]["severity"] == severity


async def test_incident_shape_names_service_and_integration(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    key = v2_key(state)
    integration = state.find_routing_key(key)
    assert isinstance(integration, Integration)
    await send(client, trigger(key, "k"))

    (incident,) = await incidents(client)

    service = state.services[incident["service"]["id"]]
    assert incident["account"] == "acme-corp"
    assert incident["service"]["summary"] == service.name
    assert incident["integration"] == {"id": integration.id}
    assert incident["type"] == "incident"


async def test_incident_filters(client: httpx2.AsyncClient, state: SandboxState) -> None:
    key = v2_key(state)
    await send(client, trigger(key, "a"))
    await send(client, trigger(key, "b"))
    await send(client, follow_up(key, "resolve", "a"))

    resolved = await incidents(client, status="resolved")
    by_key = await incidents(client, incident_key="b")
    elsewhere = await incidents(client, subdomain="initech")
    unknown = await client.get("/_sandbox/incidents", params={"subdomain": "nope"})
    bad = await client.get("/_sandbox/incidents", params={"status": "open"})

    assert [i["incident_key"] for i in resolved] == ["a"]
    assert [i["incident_key"] for i in by_key] == ["b"]
    assert elsewhere == []
    assert (unknown.status_code, bad.status_code) == (404, 400)


async def test_incidents_can_be_cleared(client: httpx2.AsyncClient, state: SandboxState) -> None:
    await send(client, trigger(v2_key(state), "a"))

    cleared = await client.delete("/_sandbox/incidents")
    again = await send(client, trigger(v2_key(state), "a"))

    assert cleared.status_code == 204
    assert again.status_code == 202
    assert len(await incidents(client)) == 1


async def test_listeners_hear_each_change(client: httpx2.AsyncClient, state: SandboxState) -> None:
    heard: list[tuple[str, str]] = []

    def listen(event_type: str, incident: Incident, agent: str | None) -> None:
        heard.append((event_type, incident.status))

    state.incidents.listeners.append(listen)
    key = v2_key(state)
    await send(client, trigger(key, "a"))
    await send(client, trigger(key, "a"))
    await send(client, follow_up(key, "acknowledge", "a"))
    await send(client, follow_up(key, "resolve", "a"))

    assert heard == [
        ("incident.triggered", "triggered"),
        ("incident.acknowledged", "acknowledged"),
        ("incident.resolved", "resolved"),
    ]
