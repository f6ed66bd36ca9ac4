"""Notes: one posted through the API lands on the sandbox's incident in the name of the user
who connected the account; one added in PagerDuty comes back as a webhook and is listed; bad
input and unknown alerts are refused with a clear answer."""

from __future__ import annotations

import json

from app.incidents.notes import NOTE_MAX_LENGTH
from app.installations.upkeep import incidents_client
from tests.incidents.conftest import Live, until
from tests.installations.conftest import ACME_USER


async def _paged_and_known(live: Live, dedup_key: str) -> str:
    paged = await live.page(dedup_key)

    async def known() -> bool:
        return (await live.event(paged["event"]["id"]))["incident"] is not None

    await until(known)
    incident_id: str = paged["incident"]["id"]
    return incident_id


async def test_a_note_posted_through_the_api_is_added_to_the_incident(live: Live) -> None:
    incident_id = await _paged_and_known(live, "disk-db1")

    added = await live.browser.post(
        "/v1/alerts/disk-db1/notes", json={"content": "Rolled back the deploy"}, headers=live.auth
    )

    assert added.status_code == 201, added.text
    note = added.json()
    assert (note["content"], note["origin"], note["incident_id"]) == (
        "Rolled back the deploy",
        "api",
        incident_id,
    )
    in_pagerduty = live.sandbox.state.incidents.incidents[incident_id].notes
    assert [(n.content, n.user_id) for n in in_pagerduty] == [("Rolled back the deploy", ACME_USER)]
    listed = await live.browser.get("/v1/alerts/disk-db1/notes", headers=live.auth)
    assert [n["content"] for n in listed.json()["notes"]] == ["Rolled back the deploy"]


async def test_a_note_added_in_pagerduty_arrives_by_webhook_and_is_listed(live: Live) -> None:
    incident_id = await _paged_and_known(live, "cpu-9")
    row = (await live.deps.db.fetch_all("SELECT id, tenant_id FROM installations"))[0]._mapping
    client = await incidents_client(live.deps, row["tenant_id"], row["id"])
    acme = live.sandbox.state.users[ACME_USER].account_id
    someone = next(u for u in live.sandbox.state.users_in(acme) if u.id != ACME_USER)
    await client.create_note(incident_id, content="Looking into it", from_email=someone.email)

    async def listed() -> list[dict[str, object]]:
        answer = await live.browser.get("/v1/alerts/cpu-9/notes", headers=live.auth)
        assert answer.status_code == 200, answer.text
        notes: list[dict[str, object]] = answer.json()["notes"]
        return notes

    async def arrived() -> bool:
        return bool(await listed())

    await until(arrived)
    [note] = await listed()
    assert (note["content"], note["origin"], note["author"]) == (
        "Looking into it",
        "pagerduty",
        someone.name,
    )


async def test_notes_refused_with_a_reason(live: Live) -> None:
    await _paged_and_known(live, "mem-2")
    url = "/v1/alerts/mem-2/notes"

    empty = await live.browser.post(url, json={"content": "  "}, headers=live.auth)
    too_long = await live.browser.post(
        url, json={"content": "x" * (NOTE_MAX_LENGTH + 1)}, headers=live.auth
    )
    unknown = await live.browser.post(
        "/v1/alerts/never-sent/notes", json={"content": "hi"}, headers=live.auth
    )
    no_key = await live.browser.post(url, json={"content": "hi"})
    # Unknown fields are named, an empty or unprintable key as well (escaped).
    stray = [
        await live.browser.post(
            url,
            content=json.dumps({"content": "hi", name: 1}).encode(),
            headers={**live.auth, "Content-Type": "application/json"},
        )
        for name in ("colour", "", "x\ud800")
    ]

    assert empty.status_code == 400, empty.text
    assert empty.json()["error"]["field"] == "content"
    assert too_long.status_code == 400
    assert str(NOTE_MAX_LENGTH) in too_long.json()["error"]["message"]
    assert unknown.status_code == 404
    assert no_key.status_code == 401
    assert [(a.status_code, a.json()["error"]["field"]) for a in stray] == [
        (400, "colour"),
        (400, '""'),
        (400, "x\\ud800"),
    ]


async def test_a_note_before_the_incident_is_known_is_a_409(live: Live) -> None:
    await _paged_and_known(live, "net-3")
    # As if no webhook nor reconciliation had named the incident yet.
    await live.deps.db.execute("DELETE FROM incident_states")

    answer = await live.browser.post(
        "/v1/alerts/net-3/notes", json={"content": "hi"}, headers=live.auth
    )

    assert answer.status_code == 409, answer.text
    assert "not told pdconnect the alert's incident" in answer.json()["error"]["message"]
