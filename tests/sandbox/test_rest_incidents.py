"""Incidents and their notes through the REST API (`listIncidents`, `getIncident`,
`listIncidentNotes`, `createIncidentNote`), shaped and refused as PagerDuty's document says."""

from __future__ import annotations

from typing import Any

import httpx2

from pdsandbox import SandboxState, WebhookSender
from pdsandbox.timefmt import iso
from tests.published.shapes import Value, array, boolean, conforms, integer, obj, string
from tests.sandbox.events_flow import follow_up, send, trigger, v2_key
from tests.sandbox.flow import GLOBEX_USER, FakeClock, bearer, connect
from tests.sandbox.webhook_flow import Receiver, deliveries, service_of_key, settle, subscribe

ADA_EMAIL = "ada@acme.example"
BOB = "PBOB002"


def _ref(*types: str) -> Value:
    return obj(
        required={"id": string(), "type": string(*types)},
        optional={"summary": string(nullable=True), "self": string(), "html_url": string()},
    )


USER_REF = _ref("user_reference")
# REST.json#/components/schemas/Incident: the members the sandbox sends, with their types.
INCIDENT = obj(
    required={
        "id": string(),
        "type": string("incident"),
        "summary": string(),
        "self": string(),
        "html_url": string(),
        "incident_number": integer(),
        "title": string(),
        "created_at": string(date_time=True),
        "updated_at": string(date_time=True),
        "status": string("triggered", "acknowledged", "resolved"),
        "incident_key": string(),
        "service": _ref("service_reference"),
        "assignments": array(obj(required={"at": string(date_time=True), "assignee": USER_REF})),
        "assigned_via": string("escalation_policy", "direct_assignment"),
        "last_status_change_at": string(date_time=True),
        "last_status_change_by": _ref("user_reference", "service_reference"),
        "resolved_at": string(date_time=True, nullable=True),
        "alert_counts": obj(
            required={"all": integer(), "triggered": integer(), "resolved": integer()}
        ),
        "is_mergeable": boolean(),
        "escalation_policy": _ref("escalation_policy_reference"),
        "teams": array(),
        "pending_actions": array(),
        "acknowledgements": array(
            obj(
                required={
                    "at": string(date_time=True),
                    "acknowledger": _ref("user_reference", "service_reference"),
                }
            )
        ),
        "urgency": string("high", "low"),
    },
    optional={
        "incident_type": obj(required={"name": string()}),
        "priority": obj(nullable=True),
        "resolve_reason": obj(nullable=True),
    },
)
# REST.json#/components/schemas/IncidentNote
NOTE = obj(
    required={
        "id": string(),
        "user": USER_REF,
        "channel": obj(required={"summary": string()}),
        "content": string(),
        "created_at": string(date_time=True),
        "updated_at": string(date_time=True),
    }
)


def _only_documented(shape: dict[str, Any], expected: Value) -> None:
    extra = set(shape) - set(expected.required) - set(expected.optional)
    assert not extra, f"members the document does not have: {sorted(extra)}"


async def _get(client: httpx2.AsyncClient, token: str, path: str, **params: Any) -> Any:
    response = await client.get(f"/us/api{path}", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


async def _open_incident(
    client: httpx2.AsyncClient, state: SandboxState, dedup_key: str = "disk-1"
) -> str:
    assert (await send(client, trigger(v2_key(state), dedup_key))).status_code == 202
    (incident,) = [i for i in state.incidents.incidents.values() if i.incident_key == dedup_key]
    return incident.id


async def _note(
    client: httpx2.AsyncClient,
    token: str,
    incident_id: str,
    body: Any,
    from_: str | None = ADA_EMAIL,
) -> httpx2.Response:
    headers = bearer(token) | ({"From": from_} if from_ is not None else {})
    return await client.post(f"/us/api/incidents/{incident_id}/notes", json=body, headers=headers)


async def test_get_incident_has_pagerduty_shape_and_follows_its_life(
    client: httpx2.AsyncClient, state: SandboxState, clock: FakeClock, acme_token: str
) -> None:
    start = clock.now
    incident_id = await _open_incident(client, state)
    triggered = (await _get(client, acme_token, f"/incidents/{incident_id}"))["incident"]
    clock.now += 60
    await send(client, follow_up(v2_key(state), "acknowledge", "disk-1"))
    acknowledged = (await _get(client, acme_token, f"/incidents/{incident_id}"))["incident"]
    clock.now += 60
    await client.post(f"/_sandbox/incidents/{incident_id}/resolve", json={"user": BOB})
    resolved = (await _get(client, acme_token, f"/incidents/{incident_id}"))["incident"]

    for shape in (triggered, acknowledged, resolved):
        conforms(shape, INCIDENT)
        _only_documented(shape, INCIDENT)
    assert triggered["incident_key"] == "disk-1"
    assert triggered["status"] == "triggered"
    assert [a["assignee"]["id"] for a in triggered["assignments"]] == ["PADA001"]
    assert triggered["service"]["id"] == service_of_key(state, v2_key(state))
    assert triggered["last_status_change_by"]["type"] == "service_reference"  # the Events API
    assert triggered["summary"] == f"[#{triggered['incident_number']}] Disk full on db-1"
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledgements"][0]["at"] == acknowledged["last_status_change_at"]
    assert acknowledged["last_status_change_at"] > triggered["created_at"]
    assert (resolved["status"], resolved["assignments"], resolved["acknowledgements"]) == (
        "resolved",
        [],
        [],
    )
    assert resolved["last_status_change_by"]["id"] == BOB
    assert resolved["resolved_at"] == resolved["last_status_change_at"]
    assert triggered["created_at"] == iso(start)
    assert resolved["resolved_at"] == iso(start + 120)


async def test_another_accounts_incident_is_not_found(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    incident_id = await _open_incident(client, state)
    globex = (await connect(client, user=GLOBEX_USER))["access_token"]

    for path in (f"/incidents/{incident_id}", f"/incidents/{incident_id}/notes"):
        response = await client.get(f"/eu/api{path}", headers=bearer(globex))
        assert response.status_code == 404, path
        assert response.json() == {"error": {"message": "Not Found", "code": 2100}}
    noted = await client.post(
        f"/eu/api/incidents/{incident_id}/notes",
        json={"note": {"content": "x"}},
        headers=bearer(globex) | {"From": "hank@globex.example"},
    )
    assert noted.status_code == 404
    listed = await client.get(
        "/eu/api/incidents", params={"date_range": "all"}, headers=bearer(globex)
    )
    assert listed.json()["incidents"] == []


async def test_list_filters_by_key_status_service_and_time(
    client: httpx2.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    key = v2_key(state)
    other_key = v2_key(state, 1)
    await send(client, trigger(key, "old"))
    clock.now += 40 * 86400  # past the default month
    acme_token = (await connect(client))["access_token"]
    await send(client, trigger(key, "a"))
    await send(client, trigger(key, "b"))
    await send(client, follow_up(key, "acknowledge", "b"))
    await send(client, trigger(other_key, "c"))

    def keys(body: Any) -> list[str]:
        return [i["incident_key"] for i in body["incidents"]]

    everything = await _get(client, acme_token, "/incidents", date_range="all", total="true")
    this_month = await _get(client, acme_token, "/incidents")
    by_key = await _get(client, acme_token, "/incidents", incident_key="b")
    acked = await _get(client, acme_token, "/incidents", **{"statuses[]": "acknowledged"})
    open_ = await client.get(
        "/us/api/incidents",
        params=[("statuses[]", "triggered"), ("statuses[]", "acknowledged")],
        headers=bearer(acme_token),
    )
    on_other = await _get(
        client, acme_token, "/incidents", **{"service_ids[]": service_of_key(state, other_key)}
    )
    old = await _get(
        client,
        acme_token,
        "/incidents",
        since="2025-06-01T00:00:00Z",
        until="2025-06-30T00:00:00+00:00",
    )
    newest_first = await _get(client, acme_token, "/incidents", sort_by="incident_number:desc")

    assert (keys(everything), everything["total"]) == (["old", "a", "b", "c"], 4)
    assert keys(this_month) == ["a", "b", "c"]
    assert keys(by_key) == ["b"]
    assert keys(acked) == ["b"]
    assert keys(open_.json()) == ["a", "b", "c"]  # "old" is out of the default month
    assert keys(on_other) == ["c"]
    assert keys(old) == ["old"]
    assert keys(newest_first) == ["c", "b", "a"]


async def test_list_pages_as_pagerduty_pages(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    for n in range(5):
        await send(client, trigger(v2_key(state), f"k{n}"))

    first = await _get(client, acme_token, "/incidents", limit=2)
    last = await _get(client, acme_token, "/incidents", limit=2, offset=4)

    assert (len(first["incidents"]), first["more"], first["limit"]) == (2, True, 2)
    assert (len(last["incidents"]), last["more"], last["total"]) == (1, False, None)


async def test_bad_filters_answer_400_in_pagerdutys_error_shape(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    bad = [
        {"statuses[]": "open"},
        {"urgencies[]": "medium"},
        {"since": "yesterday"},
        {"since": "2025-06-10T00:00:00Z", "until": "2025-06-01T00:00:00Z"},
        {"since": "2024-01-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"},  # over 6 months
        {"date_range": "last_week"},
        {"sort_by": "title"},
        {"limit": "-1"},
    ]
    for params in bad:
        response = await client.get("/us/api/incidents", params=params, headers=bearer(acme_token))
        assert response.status_code == 400, params
        error = response.json()["error"]
        assert (error["message"], error["code"]) == ("Invalid Input Provided", 2001), params
        assert error["errors"], params


async def test_reading_needs_a_token_and_noting_needs_write(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    incident_id = await _open_incident(client, state)
    reader = (await connect(client, scope="read"))["access_token"]

    anonymous = await client.get(f"/us/api/incidents/{incident_id}")
    wrong = await client.get("/us/api/incidents", headers=bearer("pdus+_0XNOPE_x"))
    read = await client.get(f"/us/api/incidents/{incident_id}", headers=bearer(reader))
    notes = await client.get(f"/us/api/incidents/{incident_id}/notes", headers=bearer(reader))
    write = await _note(client, reader, incident_id, {"note": {"content": "hi"}})

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.json()["error"]["code"] == 2006
    assert (read.status_code, notes.status_code) == (200, 200)
    assert write.status_code == 403
    assert write.json()["error"]["code"] == 2010
    assert state.incidents.incidents[incident_id].notes == []


async def test_a_note_is_added_listed_and_sent_as_incident_annotated(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    await subscribe(client, acme_token, events=["incident.annotated"])
    incident_id = await _open_incident(client, state)

    created = await _note(
        client, acme_token, incident_id, {"note": {"content": "Firefighters are on the scene."}}
    )
    await _note(client, acme_token, incident_id, {"note": {"content": "Out."}}, "bob@acme.example")
    listed = await _get(client, acme_token, f"/incidents/{incident_id}/notes")
    await settle(webhooks)

    assert created.status_code == 200, created.text  # createIncidentNote answers 200
    note = created.json()["note"]
    conforms(note, NOTE)
    assert (note["content"], note["user"]["id"]) == ("Firefighters are on the scene.", "PADA001")
    assert [n["content"] for n in listed["notes"]] == ["Firefighters are on the scene.", "Out."]
    assert listed["notes"][1]["user"]["id"] == BOB
    assert set(listed) == {"notes"}
    (first, second) = receiver.events()
    assert (first["event_type"], first["resource_type"]) == ("incident.annotated", "incident")
    assert first["agent"]["id"] == "PADA001"
    assert first["data"] == {
        "incident": {
            "id": incident_id,
            "type": "incident_reference",
            "summary": "Disk full on db-1",
            "self": f"http://127.0.0.1:8900/us/api/incidents/{incident_id}",
            "html_url": f"http://127.0.0.1:8900/app/acme-corp/incidents/{incident_id}",
        },
        "id": note["id"],
        "content": "Firefighters are on the scene.",
        "trimmed": False,
        "type": "incident_note",
    }
    assert second["agent"]["id"] == BOB


async def test_a_note_needs_a_from_header_naming_a_user_of_the_account(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    incident_id = await _open_incident(client, state)
    body = {"note": {"content": "hi"}}

    missing = await _note(client, acme_token, incident_id, body, from_=None)
    malformed = await _note(client, acme_token, incident_id, body, from_="ada")
    stranger = await _note(client, acme_token, incident_id, body, from_="hank@globex.example")
    blank = await _note(client, acme_token, incident_id, {"note": {"content": "  "}})
    unwrapped = await _note(client, acme_token, incident_id, {"content": "hi"})

    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == 2016
    assert '"From" header' in missing.json()["error"]["message"]
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, 1028)
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (400, 2001)
    assert (blank.status_code, unwrapped.status_code) == (400, 400)
    assert state.incidents.incidents[incident_id].notes == []


async def test_resolving_while_webhooks_are_disabled_still_shows_in_get_incident(
    client: httpx2.AsyncClient,
    state: SandboxState,
    acme_token: str,
    receiver: Receiver,
    webhooks: WebhookSender,
) -> None:
    sub_id, _ = await subscribe(client, acme_token)
    incident_id = await _open_incident(client, state)
    await settle(webhooks)
    disabled = await client.post(f"/_sandbox/webhook_subscriptions/{sub_id}/disable")

    resolved = await client.post(f"/_sandbox/incidents/{incident_id}/resolve")
    await settle(webhooks)
    incident = (await _get(client, acme_token, f"/incidents/{incident_id}"))["incident"]
    sub = await _get(client, acme_token, f"/webhook_subscriptions/{sub_id}")

    assert disabled.status_code == 200
    assert resolved.status_code == 200
    assert incident["status"] == "resolved"  # what a reconciler reads
    assert receiver.event_types() == ["incident.triggered"]  # the resolve was never sent
    (dropped,) = await deliveries(client, event_type="incident.resolved")
    assert (dropped["state"], dropped["last_error"]) == ("dropped", "subscription disabled")
    method = sub["webhook_subscription"]["delivery_method"]
    assert (sub["webhook_subscription"]["active"], method["temporarily_disabled"]) == (False, True)
