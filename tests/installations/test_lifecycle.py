"""A connection's life: tokens refreshed and revoked, integrations deleted in PagerDuty and
repaired by a reconnect, webhooks back, and a disconnect that leaves nothing behind."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from databases import Database

from app.deps import Deps
from app.installations.upkeep import Upkeep
from app.webhooks.signature import sign
from tests.conftest import FakeClock, admin_headers
from tests.installations.conftest import (
    Sandbox,
    consent,
    count,
    flashes,
    follow_callback,
    signed_in,
    start_oauth,
)
from tests.installations.test_secrets_at_rest import dump


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


async def connect_two(
    deps: Deps, sandbox: Sandbox
) -> tuple[httpx2.AsyncClient, dict[str, Any], str]:
    """A tenant with acme-corp connected by OAuth and two services picked."""
    http, tenant = await signed_in(deps)
    picker = (await follow_callback(http, await consent(sandbox, await start_oauth(http)))).headers[
        "location"
    ]
    page = (await http.get(picker)).text
    ids = re.findall(r'data-service-id="([A-Z0-9]+)"', page)[:2]
    saved = await http.post(picker, data={"csrf_token": csrf_of(page), "service": ids})
    assert saved.status_code == 303
    installation_id = picker.split("/")[3]
    return http, tenant, installation_id


async def ours_in_sandbox(sandbox: Sandbox) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    account = await sandbox.account("acme-corp")
    integrations = [
        {**i, "service_id": s["id"]}
        for s in account["services"]
        for i in s["integrations"]
        if i["name"] == "pdconnect"
    ]
    return integrations, account["webhook_subscriptions"]


async def test_connecting_subscribes_each_service_to_webhooks(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    await connect_two(deps, sandbox)
    integrations, subscriptions = await ours_in_sandbox(sandbox)
    assert len(subscriptions) == 2
    assert {s["filter"]["id"] for s in subscriptions} == {i["service_id"] for i in integrations}
    for s in subscriptions:
        assert s["url"].startswith("http://127.0.0.1:8000/pagerduty/webhooks/")
        assert "incident.acknowledged" in s["events"]
        assert "service.deleted" in s["events"]
    # The signing secret is kept, encrypted.
    rows = await db.fetch_all("SELECT * FROM webhook_subscriptions")
    dump = " ".join(str(dict(r._mapping)) for r in rows)
    for s in subscriptions:
        assert s["secret"] not in dump
    assert len(rows) == 2


async def test_an_expired_token_is_refreshed_quietly(
    deps: Deps, sandbox: Sandbox, db: Database, clock: FakeClock
) -> None:
    http, _, installation_id = await connect_two(deps, sandbox)
    before = await db.fetch_one("SELECT access_token_enc, refresh_token_enc FROM installations")
    assert before is not None
    clock.advance(days=11)  # past the access token's 864000 seconds
    page = await http.get(f"/settings/installations/{installation_id}/services")
    assert page.status_code == 200, await flashes(http)
    assert page.text.count("(connected)") == 2
    after = await db.fetch_one(
        "SELECT refresh_token_enc, token_expires_at, status FROM installations"
    )
    assert after is not None
    assert after._mapping["refresh_token_enc"] != before._mapping["refresh_token_enc"]
    assert after._mapping["token_expires_at"] > clock.now
    assert after._mapping["status"] == "active"


async def test_upkeep_renews_tokens_a_day_ahead(
    deps: Deps, sandbox: Sandbox, db: Database, clock: FakeClock
) -> None:
    await connect_two(deps, sandbox)
    clock.advance(days=9, hours=12)  # less than a day left
    old = await db.fetch_val("SELECT refresh_token_enc FROM installations")
    assert await Upkeep(deps, period=timedelta(minutes=5)).once() == 1
    assert await db.fetch_val("SELECT refresh_token_enc FROM installations") != old


async def test_a_revoked_grant_shows_needs_reconnect_and_reconnect_restores(
    deps: Deps, sandbox: Sandbox, db: Database, clock: FakeClock
) -> None:
    http, _, installation_id = await connect_two(deps, sandbox)
    await sandbox.http.post(
        f"{sandbox.url}/_sandbox/tokens/revoke", json={"subdomain": "acme-corp"}
    )
    clock.advance(days=9, hours=12)  # the upkeep tries to renew, and PagerDuty refuses
    await Upkeep(deps, period=timedelta(minutes=5)).once()
    page = await flashes(http)
    assert "needs reconnect" in page
    assert f'id="reconnect-{installation_id}"' in page
    # Reconnecting keeps the installation, its services and rules.
    await follow_callback(http, await consent(sandbox, await start_oauth(http)))
    page = await flashes(http)
    assert "needs reconnect" not in page
    assert await count(db, "installations") == 1
    assert await count(db, "pd_services") == 2


async def test_a_deleted_integration_is_found_and_its_events_held_until_reconnect(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant, _ = await connect_two(deps, sandbox)
    integrations, _ = await ours_in_sandbox(sandbox)
    victim = integrations[0]
    deleted = await sandbox.http.delete(
        f"{sandbox.url}/_sandbox/accounts/acme-corp/services/{victim['service_id']}"
        f"/integrations/{victim['id']}"
    )
    assert deleted.status_code in (200, 204)
    await db.execute("UPDATE installations SET next_check_at = now()")
    await Upkeep(deps, period=timedelta(minutes=5)).once()
    row = await db.fetch_one(
        """
        SELECT id, health, health_reason, routing_key_hash FROM pd_services
        WHERE pd_service_id = :p
        """,
        {"p": victim["service_id"]},
    )
    assert row is not None
    assert row._mapping["health"] == "gone"
    assert "deleted in PagerDuty" in row._mapping["health_reason"]

    # New events for it are held and visible, not dropped.
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    answer = await http.post(
        "/v1/alerts", json={"summary": "s", "service": victim["service_id"]}, headers=auth
    )
    assert answer.status_code == 202
    assert answer.json()["events"][0]["status"] == "held"
    assert "gone" in await flashes(http)

    # Reconnecting creates the integration again and releases the held event under the new key.
    await follow_callback(http, await consent(sandbox, await start_oauth(http)))
    repaired = await db.fetch_one(
        "SELECT health, routing_key_hash FROM pd_services WHERE id = :id",
        {"id": row._mapping["id"]},
    )
    assert repaired is not None
    assert repaired._mapping["health"] == "healthy"
    assert repaired._mapping["routing_key_hash"] != row._mapping["routing_key_hash"]
    event = await db.fetch_one("SELECT status, routing_key_hash FROM events")
    assert event is not None
    assert event._mapping["status"] == "queued"
    assert event._mapping["routing_key_hash"] == repaired._mapping["routing_key_hash"]
    again, _ = await ours_in_sandbox(sandbox)
    assert len(again) == 2


async def webhook_target(db: Database, sandbox: Sandbox) -> tuple[str, str, str]:
    """Our receiver path for the first subscription, its secret, and its service's PD id."""
    row = await db.fetch_one(
        """
        SELECT id, pd_subscription_id, pd_service_id FROM webhook_subscriptions
        ORDER BY created_at LIMIT 1
        """
    )
    assert row is not None
    secret = next(
        s["secret"]
        for s in (await sandbox.account("acme-corp"))["webhook_subscriptions"]
        if s["id"] == row._mapping["pd_subscription_id"]
    )
    return f"/pagerduty/webhooks/{row._mapping['id']}", secret, row._mapping["pd_service_id"]


def incident_event(
    event_type: str,
    status: str,
    service_id: str,
    dedup_key: str,
    *,
    at: datetime,
    agent: str | None = "Ada Lovelace",
) -> bytes:
    return json.dumps(
        {
            "event": {
                "id": str(uuid.uuid4()),
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": at.isoformat().replace("+00:00", "Z"),
                "agent": None
                if agent is None
                else {"id": "PADA001", "type": "user_reference", "summary": agent},
                "client": None,
                "data": {
                    "id": "PINC123",
                    "type": "incident",
                    "number": 42,
                    "status": status,
                    "incident_key": dedup_key,
                    "title": "Disk full",
                    "service": {"id": service_id, "type": "service_reference"},
                    "html_url": "https://acme-corp.pagerduty.com/incidents/PINC123",
                },
            }
        }
    ).encode()


async def test_webhooks_are_verified_deduplicated_and_shown(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant, _ = await connect_two(deps, sandbox)
    path, secret, pd_service = await webhook_target(db, sandbox)
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    sent = await http.post(
        "/v1/alerts",
        json={"summary": "Disk full", "dedup_key": "disk-1", "service": pd_service},
        headers=auth,
    )
    event_id = sent.json()["events"][0]["id"]
    at = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
    body = incident_event("incident.acknowledged", "acknowledged", pd_service, "disk-1", at=at)

    async def deliver(
        raw: bytes, signature: str | None, webhook_id: str = "wh-1"
    ) -> httpx2.Response:
        headers = {"X-Webhook-Id": webhook_id, "Content-Type": "application/json"}
        if signature is not None:
            headers["X-PagerDuty-Signature"] = signature
        return await http.post(path, content=raw, headers=headers)

    assert (await deliver(body, None)).status_code == 401
    # No v1 entry: nothing in the header can vouch for the body.
    assert (await deliver(body, "sha256=abc")).status_code == 401
    assert (await deliver(body, f"v1={sign('wrong-secret', body)}")).status_code == 401
    assert (await deliver(body + b" ", f"v1={sign(secret, body)}")).status_code == 401
    assert await count(db, "incident_states") == 0

    # During a rotation PagerDuty sends two signatures; either may be ours.
    rotated = f"v1={sign('the-new-secret-we-do-not-know', body)},v1={sign(secret, body)}"
    ok = await deliver(body, rotated)
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok"}
    again = await deliver(body, f"v1={sign(secret, body)}")
    assert again.json() == {"status": "duplicate"}
    assert await count(db, "webhook_deliveries") == 1

    detail = (await http.get(f"/v1/events/{event_id}", headers=auth)).json()
    assert detail["incident"]["status"] == "acknowledged"
    assert detail["incident"]["changed_by"] == "Ada Lovelace"
    assert "acknowledged by Ada Lovelace" in await flashes(http)

    # An older delivery arriving late does not overwrite a newer state.
    later = at + timedelta(minutes=5)
    resolved = incident_event(
        "incident.resolved", "resolved", pd_service, "disk-1", at=later, agent="Bob"
    )
    await deliver(resolved, f"v1={sign(secret, resolved)}", "wh-2")
    late = incident_event(
        "incident.acknowledged", "acknowledged", pd_service, "disk-1", at=at + timedelta(minutes=1)
    )
    await deliver(late, f"v1={sign(secret, late)}", "wh-3")
    detail = (await http.get(f"/v1/events/{event_id}", headers=auth)).json()
    assert detail["incident"]["status"] == "resolved"
    assert detail["incident"]["changed_by"] == "Bob"

    gone = json.dumps(
        {
            "event": {
                "id": "e9",
                "event_type": "service.deleted",
                "resource_type": "service",
                "occurred_at": "2026-11-22T12:30:00Z",
                "agent": None,
                "data": {"id": pd_service, "type": "service"},
            }
        }
    ).encode()
    assert (await deliver(gone, f"v1={sign(secret, gone)}", "wh-4")).status_code == 200
    health = await db.fetch_val(
        "SELECT health FROM pd_services WHERE pd_service_id = :p", {"p": pd_service}
    )
    assert health == "gone"
    unknown = await http.post(f"/pagerduty/webhooks/{uuid.uuid4()}", content=body)
    assert unknown.status_code == 404


async def test_disconnect_deletes_in_pagerduty_and_leaves_no_secret(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    # A PagerDuty that answers the revoke request (PagerDuty documents none: see
    # test_disconnect_revoke for what happens then).
    await sandbox.control(revoke_endpoint="present")
    http, tenant, installation_id = await connect_two(deps, sandbox)
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    # A second account (a pasted key) that must survive.
    kept = await http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Kept", "routing_key": "k" * 32},
        headers=admin_headers(),
    )
    assert kept.status_code == 201
    integrations, subscriptions = await ours_in_sandbox(sandbox)
    routing_keys = [i["integration_key"] for i in integrations]
    secrets = [s["secret"] for s in subscriptions]
    pending = await http.post(
        "/v1/alerts", json={"summary": "s", "service": integrations[0]["service_id"]}, headers=auth
    )
    event_id = pending.json()["events"][0]["id"]

    confirm = await http.get(f"/settings/installations/{installation_id}/disconnect")
    assert confirm.status_code == 200
    assert "deletes 2 integration(s)" in confirm.text
    assert "2 webhook subscription(s)" in confirm.text
    assert "1 event(s) not yet delivered are cancelled" in confirm.text
    refused = await http.post(f"/settings/installations/{installation_id}/disconnect", data={})
    assert refused.status_code == 403
    done = await http.post(
        f"/settings/installations/{installation_id}/disconnect",
        data={"csrf_token": csrf_of(confirm.text)},
    )
    assert done.status_code == 303

    page = await flashes(http)
    assert "Disconnected acme-corp. 1 pending event(s) cancelled." in page
    activity = (await http.get("/settings/activity")).text
    assert "An admin disconnected acme-corp (2 services)." in activity
    accounts = page.split('id="accounts"')[1].split('id="manual-key"')[0]
    assert "acme-corp" not in accounts
    assert "Kept" in accounts
    left, subs_left = await ours_in_sandbox(sandbox)
    assert left == []
    assert subs_left == []
    grants = (await sandbox.account("acme-corp"))["grants"]
    assert all(g["revoked"] for g in grants)
    event = (await http.get(f"/v1/events/{event_id}", headers=auth)).json()
    assert event["status"] == "cancelled"
    assert "disconnected" in event["last_error"]
    # Every table, every column.
    text = await dump(db)
    for secret in [*routing_keys, *secrets]:
        assert secret not in text
    assert await count(db, "installations") == 1  # the pasted keys' installation


async def test_admin_disconnect_of_simple_install_lists_what_to_delete_by_hand(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    from tests.installations.test_simple_install import KEY_A, config_of, deliver, start_install

    http, tenant = await signed_in(deps)
    _, state = await start_install(http, sandbox)
    await deliver(
        http,
        state,
        config_of(
            {
                "integration_key": KEY_A,
                "name": "Super Cool Service",
                "id": "PD12345",
                "type": "service",
            }
        ),
    )
    listed = (
        await http.get(f"/admin/v1/tenants/{tenant['id']}/installations", headers=admin_headers())
    ).json()
    [installation] = listed["installations"]
    assert installation["method"] == "simple_install"
    report = await http.delete(
        f"/admin/v1/tenants/{tenant['id']}/installations/{installation['id']}",
        headers=admin_headers(),
    )
    assert report.status_code == 200
    body = report.json()
    assert body["deleted_in_pagerduty"] == []
    assert body["delete_in_pagerduty_yourself"] == [
        "the integration of Super Cool Service (PD12345) in PagerDuty account acme-corp"
    ]
    assert await count(db, "pd_services") == 0
    assert (
        await http.delete(
            f"/admin/v1/tenants/{tenant['id']}/installations/{installation['id']}",
            headers=admin_headers(),
        )
    ).status_code == 404


async def test_a_service_deleted_in_pagerduty_is_found_within_one_check(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant, _ = await connect_two(deps, sandbox)
    integrations, _ = await ours_in_sandbox(sandbox)
    victim = integrations[1]["service_id"]
    deleted = await sandbox.http.delete(
        f"{sandbox.url}/_sandbox/accounts/acme-corp/services/{victim}"
    )
    assert deleted.status_code in (200, 204)
    await db.execute("UPDATE installations SET next_check_at = now()")
    await Upkeep(deps, period=timedelta(minutes=5)).once()
    health = await db.fetch_val(
        "SELECT health FROM pd_services WHERE pd_service_id = :p", {"p": victim}
    )
    assert health == "gone"
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    answer = await http.post("/v1/alerts", json={"summary": "s", "service": victim}, headers=auth)
    assert answer.json()["events"][0]["status"] == "held"
    listed = await http.get("/v1/events", params={"status": "held"}, headers=auth)
    assert len(listed.json()["events"]) == 1


async def test_deleting_a_tenant_disconnects_its_accounts_first(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    await sandbox.control(revoke_endpoint="present")
    http, tenant, _ = await connect_two(deps, sandbox)
    deleted = await http.delete(f"/admin/v1/tenants/{tenant['id']}", headers=admin_headers())
    assert deleted.status_code == 204
    integrations, subscriptions = await ours_in_sandbox(sandbox)
    assert integrations == []
    assert subscriptions == []
    assert all(g["revoked"] for g in (await sandbox.account("acme-corp"))["grants"])
    assert await count(db, "tenants") == 0
    gone = await http.get(f"/admin/v1/tenants/{tenant['id']}", headers=admin_headers())
    assert gone.status_code == 404


async def test_the_activity_names_the_person_who_connected(deps: Deps, sandbox: Sandbox) -> None:
    """PagerDuty's id_token names the user by id only; pdconnect asks PagerDuty who they are
    (GET /users/me) when they connect, and the activity says their name."""
    http, _, _ = await connect_two(deps, sandbox)
    activity = (await http.get("/settings/activity")).text
    assert "Ada Lovelace" in activity
    assert "PagerDuty user PADA001" not in activity
