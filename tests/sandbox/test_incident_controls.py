"""Acting on incidents by hand: the controls, the page with buttons, and the webhooks they
send with the acting user as the agent."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState, WebhookSender
from tests.sandbox.events_flow import follow_up, incidents, send, trigger, v2_key
from tests.sandbox.flow import ACME_USER, GLOBEX_USER
from tests.sandbox.webhook_flow import Receiver, settle, subscribe, verify

BOB = "PBOB002"


async def _open_incident(client: httpx2.AsyncClient, state: SandboxState, key: str = "x") -> str:
    await send(client, trigger(v2_key(state), key))
    found = await incidents(client, incident_key=key)
    incident_id: str = found[-1]["id"]
    return incident_id


async def _act(
    client: httpx2.AsyncClient, incident_id: str, action: str, **body: Any
) -> httpx2.Response:
    return await client.post(f"/_sandbox/incidents/{incident_id}/{action}", json=body or None)


async def test_acknowledge_and_resolve_by_hand_send_webhooks_naming_the_user(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    _, secret = await subscribe(client, acme_token)
    incident_id = await _open_incident(client, state)

    acked = await _act(client, incident_id, "acknowledge")
    resolved = await _act(client, incident_id, "resolve", user=BOB)
    await settle(webhooks)

    assert acked.json()["event_type"] == "incident.acknowledged"
    assert acked.json()["incident"]["status"] == "acknowledged"
    assert resolved.json()["incident"]["status"] == "resolved"
    triggered, acknowledged, done = receiver.events()
    assert triggered["agent"] is None
    assert acknowledged["event_type"] == "incident.acknowledged"
    assert acknowledged["agent"] == {
        "id": ACME_USER,
        "type": "user_reference",
        "summary": "Ada Lovelace",
        "self": f"http://127.0.0.1:8900/us/api/users/{ACME_USER}",
        "html_url": f"http://127.0.0.1:8900/app/acme-corp/users/{ACME_USER}",
    }
    assert acknowledged["client"] == {"name": "PagerDuty"}
    assert acknowledged["data"]["status"] == "acknowledged"
    assert (done["event_type"], done["agent"]["id"]) == ("incident.resolved", BOB)
    assert (done["data"]["status"], done["data"]["assignees"]) == ("resolved", [])
    assert all(verify(r, secret) for r in receiver.received)
    entries = acked.json()["incident"]["log_entries"]
    assert entries[-1]["agent"] == {"id": ACME_USER, "type": "user_reference"}
    assert entries[-1]["channel"] == {"type": "website"}


async def test_resolving_by_hand_closes_the_alert_for_the_events_api(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    first = await _open_incident(client, state)
    await _act(client, first, "resolve")

    await send(client, follow_up(v2_key(state), "resolve", "x"))  # nothing left to resolve
    second = await _open_incident(client, state)
    await settle(webhooks)

    assert second != first
    assert receiver.event_types() == [
        "incident.triggered", "incident.resolved", "incident.triggered",
    ]  # fmt: skip


async def test_an_action_that_does_not_apply_is_409_and_sends_nothing(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    incident_id = await _open_incident(client, state)
    await _act(client, incident_id, "acknowledge")

    again = await _act(client, incident_id, "acknowledge")
    await send(client, follow_up(v2_key(state), "acknowledge", "x"))
    await _act(client, incident_id, "resolve")
    late = await _act(client, incident_id, "escalate")
    await settle(webhooks)

    assert again.status_code == 409
    assert again.json()["event_type"] is None
    assert late.status_code == 409
    assert receiver.event_types() == [
        "incident.triggered", "incident.acknowledged", "incident.resolved",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/_sandbox/incidents/PNOPE00/acknowledge", None, 404),
        ("/_sandbox/incidents/{id}/snooze", None, 404),
        ("/_sandbox/incidents/{id}/acknowledge", {"user": GLOBEX_USER}, 404),
        ("/_sandbox/incidents/{id}/acknowledge", {"user": 7}, 400),
        ("/_sandbox/incidents/{id}/escalate", {"level": 9}, 400),
        ("/_sandbox/incidents/{id}/reassign", {"assignee": "PNOPE00"}, 404),
    ],
)
async def test_bad_actions_are_refused(
    client: httpx2.AsyncClient,
    state: SandboxState,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    incident_id = await _open_incident(client, state)

    response = await client.post(path.format(id=incident_id), json=body)

    assert response.status_code == status
    assert (await incidents(client))[0]["status"] == "triggered"


async def test_unacknowledge_escalate_reassign_and_reopen(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    # A service on "Platform On-Call": Ada, then Bob.
    service = next(s for s in state.services.values() if s.escalation_policy_id == "PEPAC02")
    integration = state.create_integration(service, "events_api_v2_inbound_integration", "T", None)
    await send(client, trigger(integration.integration_key, "y"))
    (incident,) = await incidents(client, incident_key="y")
    iid = incident["id"]

    steps = [
        await _act(client, iid, "acknowledge"),
        await _act(client, iid, "unacknowledge"),
        await _act(client, iid, "escalate"),
        await _act(client, iid, "reassign", user=BOB, assignee=ACME_USER),
        await _act(client, iid, "resolve"),
        await _act(client, iid, "reopen", user=BOB),
    ]
    await settle(webhooks)

    assert [s.status_code for s in steps] == [200] * 6
    assert incident["assignees"] == [ACME_USER]
    assert receiver.event_types() == [
        "incident.triggered", "incident.acknowledged", "incident.unacknowledged",
        "incident.escalated", "incident.reassigned", "incident.resolved", "incident.reopened",
    ]  # fmt: skip
    data = [e["data"] for e in receiver.events()]
    assert [d["status"] for d in data] == [
        "triggered", "acknowledged", "triggered", "triggered", "triggered", "resolved",
        "triggered",
    ]  # fmt: skip
    assignees = [[a["id"] for a in d["assignees"]] for d in data]
    assert assignees[3] == [BOB]  # escalated to level 2
    assert assignees[4] == [ACME_USER]  # reassigned to Ada by Bob
    assert assignees[6] == [ACME_USER]  # reopened: level 1 again
    assert receiver.events()[4]["agent"]["id"] == BOB
    # Reopened, it answers to its dedup key again.
    await send(client, follow_up(integration.integration_key, "acknowledge", "y"))
    assert (await incidents(client, incident_key="y"))[0]["status"] == "acknowledged"


async def test_the_page_lists_incidents_with_buttons_that_act(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token)
    incident_id = await _open_incident(client, state)

    before = await client.get("/_sandbox/incidents/page")
    clicked = await client.post(f"/_sandbox/incidents/{incident_id}/acknowledge?html=1")
    after = await client.get("/_sandbox/incidents/page")
    await settle(webhooks)

    assert before.status_code == 200
    assert f"id=ack-{incident_id}>" in before.text
    assert f"id=resolve-{incident_id}>" in before.text
    assert (
        f'action="http://127.0.0.1:8900/_sandbox/incidents/{incident_id}/acknowledge?html=1"'
        in (before.text)
    )
    assert clicked.status_code == 303
    assert clicked.headers["location"] == "http://127.0.0.1:8900/_sandbox/incidents/page"
    assert f"id=ack-{incident_id} disabled>" in after.text
    assert f"id=status-{incident_id}>acknowledged<" in after.text
    assert receiver.events()[-1]["agent"]["id"] == ACME_USER


async def test_a_form_post_names_the_user(client: httpx2.AsyncClient, state: SandboxState) -> None:
    incident_id = await _open_incident(client, state)

    response = await client.post(f"/_sandbox/incidents/{incident_id}/resolve", data={"user": BOB})

    assert response.json()["incident"]["log_entries"][-1]["agent"]["id"] == BOB
