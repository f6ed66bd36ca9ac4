"""What one request may write is bounded in events, after its rules fan its alerts out to their
services: the key's rate limit counts events, and alerts and events per request, services and
rules per tenant are capped, each a setting named in the refusal. A refused request is refused
whole: no event and no alert's life of it is stored."""

from __future__ import annotations

import secrets
from typing import Any

import httpx2
from databases import Database

from app.deps import Deps
from tests.conftest import FakeClock, admin_headers
from tests.security.helpers import app_client, bearer, sending_tenant


async def add_services(http: httpx2.AsyncClient, tenant: dict[str, Any], count: int) -> list[str]:
    """`count` more services, and a catch-all rule that fans every alert out to all of the
    tenant's services."""
    for n in range(count):
        added = await http.post(
            f"/admin/v1/tenants/{tenant['id']}/services",
            json={"name": f"Team {n}", "routing_key": secrets.token_hex(16), "api": "v2"},
            headers=admin_headers(),
        )
        assert added.status_code == 201, added.text
    listed = await http.get(f"/admin/v1/tenants/{tenant['id']}/services", headers=admin_headers())
    ids = [s["id"] for s in listed.json()["services"]]
    routes = await http.put(
        f"/admin/v1/tenants/{tenant['id']}/routes",
        json={"routes": [{"name": "everyone", "conditions": [], "service_ids": ids}]},
        headers=admin_headers(),
    )
    assert routes.status_code == 200, routes.text
    return ids


def batch(count: int, prefix: str = "a") -> dict[str, Any]:
    return {
        "alerts": [{"summary": f"disk {n} full", "dedup_key": f"{prefix}{n}"} for n in range(count)]
    }


async def stored(db: Database, tenant: dict[str, Any]) -> tuple[int, int]:
    """The tenant's events and alert lives."""
    events = await db.fetch_val(
        "SELECT count(*) FROM events WHERE tenant_id = CAST(:t AS uuid)", {"t": tenant["id"]}
    )
    lives = await db.fetch_val(
        "SELECT count(*) FROM alerts WHERE tenant_id = CAST(:t AS uuid)", {"t": tenant["id"]}
    )
    return int(events), int(lives)


async def test_a_fan_out_over_the_event_cap_is_refused_whole(deps: Deps) -> None:
    async with app_client(deps, PDCONNECT_MAX_EVENTS_PER_REQUEST="20") as http:
        tenant = await sending_tenant(http, "Acme")
        await add_services(http, tenant, 4)  # five services in all

        # Four alerts to five services: 20 events, the cap.
        accepted = await http.post(
            "/v1/alerts", json=batch(4), headers=bearer(tenant["ingest_key"])
        )
        assert accepted.status_code == 202, accepted.text
        assert len(accepted.json()["events"]) == 20
        assert await stored(deps.db, tenant) == (20, 4)

        # Five alerts (new ones: rules route them) to five services: 25 events.
        refused = await http.post(
            "/v1/alerts", json=batch(5, "b"), headers=bearer(tenant["ingest_key"])
        )
        assert refused.status_code == 413
        message = refused.json()["error"]["message"]
        assert "would write 25 events" in message
        assert "PDCONNECT_MAX_EVENTS_PER_REQUEST" in message
        assert await stored(deps.db, tenant) == (20, 4)


async def test_the_rate_limit_counts_events_after_fan_out(deps: Deps, clock: FakeClock) -> None:
    # One event a second, bursts of ten.
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT="1") as http:
        tenant = await sending_tenant(http, "Acme")
        await add_services(http, tenant, 1)  # two services
        key = tenant["ingest_key"]

        # Three alerts to two services: six of the ten.
        assert (
            await http.post("/v1/alerts", json=batch(3), headers=bearer(key))
        ).status_code == 202
        refused = await http.post("/v1/alerts", json=batch(3, "b"), headers=bearer(key))
        assert refused.status_code == 429
        message = refused.json()["error"]["message"]
        assert "this request would write 6" in message
        assert "PDCONNECT_INGEST_RATE_LIMIT" in message
        # Its key check took one more; a retry pays for that again and then five more.
        assert refused.headers["retry-after"] == "3"
        assert await stored(deps.db, tenant) == (6, 3)

        clock.advance(seconds=3)
        again = await http.post("/v1/alerts", json=batch(3, "b"), headers=bearer(key))
        assert again.status_code == 202, again.text
        assert await stored(deps.db, tenant) == (12, 6)
        # The budget is spent: even one more event waits.
        assert (
            await http.post("/v1/alerts", json=batch(1, "c"), headers=bearer(key))
        ).status_code == 429


async def test_a_request_larger_than_any_burst_is_413_not_429(deps: Deps) -> None:
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT="1") as http:
        tenant = await sending_tenant(http, "Acme")
        refused = await http.post(
            "/v1/alerts", json=batch(11), headers=bearer(tenant["ingest_key"])
        )
        # Retrying would never help: say so with 413 and the limit.
        assert refused.status_code == 413
        message = refused.json()["error"]["message"]
        assert "would write 11 events" in message
        assert "at once: 10 (PDCONNECT_INGEST_RATE_LIMIT" in message
        assert await stored(deps.db, tenant) == (0, 0)


async def test_alerts_per_request_are_capped(deps: Deps) -> None:
    async with app_client(deps, PDCONNECT_MAX_ALERTS_PER_REQUEST="3") as http:
        tenant = await sending_tenant(http, "Acme")
        refused = await http.post("/v1/alerts", json=batch(4), headers=bearer(tenant["ingest_key"]))
        assert refused.status_code == 413
        error = refused.json()["error"]
        assert error["field"] == "alerts"
        assert (
            "4 alerts in one request; at most 3 (PDCONNECT_MAX_ALERTS_PER_REQUEST)"
            in error["message"]
        )
        assert await stored(deps.db, tenant) == (0, 0)

        alertmanager = {
            "version": "4",
            "status": "firing",
            "receiver": "pdconnect",
            "groupKey": "{}:{}",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": f"A{n}"},
                    "annotations": {},
                    "fingerprint": f"f{n}",
                }
                for n in range(4)
            ],
        }
        refused = await http.post(
            "/v1/alerts/alertmanager?mode=alert",
            json=alertmanager,
            headers=bearer(tenant["ingest_key"]),
        )
        assert refused.status_code == 413, refused.text
        assert "PDCONNECT_MAX_ALERTS_PER_REQUEST" in refused.json()["error"]["message"]
        assert await stored(deps.db, tenant) == (0, 0)


async def test_drop_ins_refuse_a_fan_out_in_pagerduty_shapes(deps: Deps, clock: FakeClock) -> None:
    payload = {"summary": "s", "source": "db1", "severity": "error"}
    async with app_client(
        deps, PDCONNECT_INGEST_RATE_LIMIT="1", PDCONNECT_MAX_EVENTS_PER_REQUEST="7"
    ) as http:
        tenant = await sending_tenant(http, "Acme")
        key = tenant["ingest_key"]
        await add_services(http, tenant, 5)  # six services: one trigger is six events
        first = await http.post(
            "/v2/enqueue", json={"routing_key": key, "event_action": "trigger", "payload": payload}
        )
        assert first.status_code == 202, first.text
        # Four of the ten are left; six are wanted.
        v2 = await http.post(
            "/v2/enqueue",
            json={
                "routing_key": key,
                "event_action": "trigger",
                "payload": payload,
                "dedup_key": "x",
            },
        )
        v1 = await http.post(
            "/generic/2010-04-15/create_event.json",
            json={
                "service_key": key,
                "event_type": "trigger",
                "description": "d",
                "incident_key": "y",
            },
        )
        throttled = {
            "status": "throttle exceeded",
            "message": "Requests for this service are arriving too quickly.  Please retry later.",
        }
        assert (v2.status_code, v1.status_code) == (429, 403)
        assert v2.json() == throttled
        assert v1.json() == throttled
        assert await stored(deps.db, tenant) == (6, 1)

        # Two more services: eight events, over the cap of seven per request (with the budget
        # refilled, so that only the cap stands in the way).
        await add_services(http, tenant, 2)
        clock.advance(minutes=1)
        capped = await http.post(
            f"/k/{key}/v2/enqueue",
            json={"event_action": "trigger", "payload": payload, "dedup_key": "z"},
        )
        assert capped.status_code == 413
        assert capped.json()["status"] == "invalid event"
        assert "PDCONNECT_MAX_EVENTS_PER_REQUEST" in capped.json()["errors"][0]
        assert await stored(deps.db, tenant) == (6, 1)


async def test_services_per_tenant_are_capped(deps: Deps) -> None:
    async with app_client(deps, PDCONNECT_MAX_SERVICES_PER_TENANT="2") as http:
        tenant = await sending_tenant(http, "Acme")  # one service
        path = f"/admin/v1/tenants/{tenant['id']}/services"

        def body() -> dict[str, str]:
            return {"name": "More", "routing_key": secrets.token_hex(16), "api": "v2"}

        assert (await http.post(path, json=body(), headers=admin_headers())).status_code == 201
        refused = await http.post(path, json=body(), headers=admin_headers())
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["field"] == "services"
        assert "at most 2 (PDCONNECT_MAX_SERVICES_PER_TENANT)" in error["message"]
        listed = await http.get(path, headers=admin_headers())
        assert len(listed.json()["services"]) == 2


async def test_rules_per_tenant_are_capped(deps: Deps) -> None:
    async with app_client(deps, PDCONNECT_MAX_RULES_PER_TENANT="2") as http:
        tenant = await sending_tenant(http, "Acme")
        path = f"/admin/v1/tenants/{tenant['id']}/routes"
        listed = await http.get(
            f"/admin/v1/tenants/{tenant['id']}/services", headers=admin_headers()
        )
        service = listed.json()["services"][0]["id"]

        def rules(count: int) -> dict[str, Any]:
            return {
                "routes": [
                    {"name": f"r{n}", "conditions": [], "service_ids": [service]}
                    for n in range(count)
                ]
            }

        assert (await http.put(path, json=rules(2), headers=admin_headers())).status_code == 200
        refused = await http.put(path, json=rules(3), headers=admin_headers())
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["field"] == "routes"
        assert "3 rules; at most 2 (PDCONNECT_MAX_RULES_PER_TENANT)" in error["message"]
        assert len((await http.get(path, headers=admin_headers())).json()["routes"]) == 2
