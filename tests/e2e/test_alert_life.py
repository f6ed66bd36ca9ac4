"""An alert's later events follow the alert: an acknowledge or resolve goes to the services
its trigger went to, whatever the rules say by then, in every input format; one for an alert
pdconnect never saw, which no rule routes, is accepted and recorded as nothing to resolve."""

from __future__ import annotations

from typing import Any

from tests.conftest import admin_headers
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher, incident


async def two_services(stack: Stack) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """A tenant with Databases and Web, rules on severity and on labels.team, no catch-all.
    Returns the tenant, service ids by name and routing keys by name."""
    tenant = await stack.tenant("Acme")
    db_key, web_key = (await stack.v2_keys())[:2]
    ids = {
        "Databases": await stack.connect_key(tenant, db_key, "Databases"),
        "Web": await stack.connect_key(tenant, web_key, "Web"),
    }
    await set_rules(
        stack,
        tenant,
        [
            ("critical to databases", "severity", "critical", ids["Databases"]),
            ("web team", "labels.team", "web", ids["Web"]),
        ],
    )
    return tenant, ids, {"Databases": db_key, "Web": web_key}


async def set_rules(
    stack: Stack, tenant: dict[str, Any], rules: list[tuple[str, str, str | None, str | list[str]]]
) -> None:
    body = {
        "routes": [
            {
                "name": name,
                "conditions": []
                if value is None
                else [{"field": field, "op": "equals", "value": value}],
                "service_ids": services if isinstance(services, list) else [services],
            }
            for name, field, value, services in rules
        ]
    }
    saved = await stack.http.put(
        f"/admin/v1/tenants/{tenant['id']}/routes", json=body, headers=admin_headers()
    )
    assert saved.status_code == 200, saved.text


async def v2(
    stack: Stack, tenant: dict[str, Any], action: str, dedup_key: str, path: str = "/v2/enqueue"
) -> Any:
    answer = await stack.http.post(
        path,
        json={"routing_key": tenant["ingest_key"], "event_action": action, "dedup_key": dedup_key},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": dedup_key,
    }
    return answer.json()


async def arrived(stack: Stack, dedup_key: str) -> list[tuple[str, str]]:
    """(routing key, event action) of each arrival of the key at the sandbox, in order."""
    return [
        (a["routing_key"], a["event_action"])
        for a in await stack.arrivals(dedup_key=dedup_key)
        if a["status"] == 202
    ]


async def settle(stack: Stack, dedup_key: str, count: int) -> list[tuple[str, str]]:
    async def done() -> bool:
        return len(await arrived(stack, dedup_key)) >= count

    await stack.wait_for(done, within=30)
    return await arrived(stack, dedup_key)


async def test_a_drop_in_resolve_with_only_its_key_reaches_the_triggers_service(
    stack: Stack,
) -> None:
    tenant, ids, keys = await two_services(stack)
    async with dispatcher(stack):
        trigger = await stack.alert(
            tenant, {"dedup_key": "disk-db1", "summary": "Disk full", "severity": "critical"}
        )
        assert trigger.status_code == 202, trigger.text
        assert trigger.json()["events"][0]["service"] == ids["Databases"]
        await v2(stack, tenant, "resolve", "disk-db1")
        routes = await settle(stack, "disk-db1", 2)
    assert routes == [(keys["Databases"], "trigger"), (keys["Databases"], "resolve")]
    found = await incident(stack, "disk-db1")
    assert found is not None
    assert found["status"] == "resolved"


async def test_rules_replaced_in_between_do_not_move_the_resolve(stack: Stack) -> None:
    tenant, ids, keys = await two_services(stack)
    trigger = await stack.alert(
        tenant,
        {
            "dedup_key": "web-5xx",
            "summary": "Errors",
            "severity": "warning",
            "labels": {"team": "web"},
        },
    )
    assert trigger.json()["events"][0]["service"] == ids["Web"]
    # Now web alerts go to Databases, and a catch-all to Databases as well.
    await set_rules(
        stack,
        tenant,
        [
            ("web to db", "labels.team", "web", ids["Databases"]),
            ("everything else", "", None, ids["Databases"]),
        ],
    )
    await v2(stack, tenant, "acknowledge", "web-5xx")
    resolved = await stack.alert(tenant, {"dedup_key": "web-5xx", "status": "resolved"})
    assert resolved.status_code == 202
    assert [e["service"] for e in resolved.json()["events"]] == [ids["Web"]]
    async with dispatcher(stack):
        routes = await settle(stack, "web-5xx", 3)
    assert routes == [
        (keys["Web"], "trigger"),
        (keys["Web"], "acknowledge"),
        (keys["Web"], "resolve"),
    ]


async def test_a_fan_out_triggers_resolve_reaches_every_service_it_went_to(stack: Stack) -> None:
    tenant, ids, keys = await two_services(stack)
    await set_rules(
        stack, tenant, [("both", "severity", "critical", [ids["Databases"], ids["Web"]])]
    )
    trigger = await stack.alert(
        tenant, {"dedup_key": "outage", "summary": "Down", "severity": "critical"}
    )
    assert {e["service"] for e in trigger.json()["events"]} == set(ids.values())
    await set_rules(stack, tenant, [("web only", "labels.team", "web", ids["Web"])])
    await v2(stack, tenant, "resolve", "outage")
    async with dispatcher(stack):
        routes = await settle(stack, "outage", 4)
    for key in keys.values():
        assert [action for k, action in routes if k == key] == ["trigger", "resolve"]


async def test_an_unknown_alerts_resolve_is_202_and_recorded_as_nothing_to_resolve(
    stack: Stack,
) -> None:
    tenant, _, _ = await two_services(stack)
    await v2(stack, tenant, "resolve", "never-seen")
    v1 = await stack.http.post(
        "/generic/2010-04-15/create_event.json",
        json={
            "service_key": tenant["ingest_key"],
            "event_type": "acknowledge",
            "incident_key": "never-seen-v1",
        },
    )
    assert v1.status_code == 200, v1.text
    assert v1.json()["incident_key"] == "never-seen-v1"
    native = await stack.alert(tenant, {"dedup_key": "never-seen-native", "status": "resolved"})
    assert native.status_code == 202
    [skipped] = native.json()["events"]
    assert skipped["status"] == "skipped"
    assert skipped["service"] is None
    listed = await stack.http.get(
        "/v1/events",
        params={"dedup_key": "never-seen"},
        headers={"Authorization": f"Bearer {tenant['ingest_key']}"},
    )
    [event] = listed.json()["events"]
    assert event["status"] == "skipped"
    assert event["kind"] == "resolve"
    assert event["last_error"].startswith("nothing to resolve")
    assert event["finished_at"] is not None
    async with dispatcher(stack):
        # Nothing goes out for them, and a firing alert still needs a rule.
        refused = await stack.alert(tenant, {"dedup_key": "x", "summary": "s", "severity": "info"})
        assert refused.status_code == 422
        await stack.alert(tenant, {"dedup_key": "y", "summary": "s", "severity": "critical"})
        await settle(stack, "y", 1)
    assert await stack.arrivals(dedup_key="never-seen") == []
    assert await stack.count("SELECT count(*) FROM events WHERE status = 'skipped'") == 3


async def test_a_trigger_after_the_resolve_is_a_new_alert_routed_by_todays_rules(
    stack: Stack,
) -> None:
    tenant, ids, _ = await two_services(stack)
    first = await stack.alert(tenant, {"dedup_key": "k", "summary": "s", "severity": "critical"})
    await stack.alert(
        tenant,
        {"dedup_key": "k", "summary": "again", "severity": "critical", "labels": {"team": "web"}},
    )
    resolve = await stack.alert(tenant, {"dedup_key": "k", "status": "resolved"})
    assert [e["service"] for e in resolve.json()["events"]] == [ids["Databases"]]
    await set_rules(stack, tenant, [("all to web", "", None, ids["Web"])])
    again = await stack.alert(tenant, {"dedup_key": "k", "summary": "s", "severity": "critical"})
    assert [e["service"] for e in again.json()["events"]] == [ids["Web"]]
    lives = await stack.deps.db.fetch_all(
        "SELECT state, acknowledged_at, resolved_at FROM alerts ORDER BY opened_at"
    )
    assert [r._mapping["state"] for r in lives] == ["resolved", "triggered"]
    assert lives[0]._mapping["resolved_at"] is not None
    assert first.json()["events"][0]["service"] == ids["Databases"]


async def test_alertmanager_resolves_follow_their_trigger_in_both_modes(stack: Stack) -> None:
    tenant, ids, keys = await two_services(stack)

    def payload(status: str, ends: str) -> dict[str, Any]:
        return {
            "version": "4",
            "groupKey": '{}:{alertname="DiskFull"}',
            "status": status,
            "receiver": "pdconnect",
            "groupLabels": {"alertname": "DiskFull"},
            "commonLabels": {"alertname": "DiskFull", "team": "web"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.local",
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": "DiskFull", "team": "web", "instance": "db1"},
                    "annotations": {"summary": "Disk full"},
                    "startsAt": "2026-12-04T10:00:00Z",
                    "endsAt": ends,
                    "generatorURL": "http://prometheus.local/graph",
                    "fingerprint": "abc123",
                }
            ],
        }

    path = f"/k/{tenant['ingest_key']}/v1/alerts/alertmanager"
    for mode in ("group", "alert"):
        firing = await stack.http.post(
            f"{path}?mode={mode}", json=payload("firing", "0001-01-01T00:00:00Z")
        )
        assert firing.status_code == 202, firing.text
        assert [e["service"] for e in firing.json()["events"]] == [ids["Web"]]
    # The web team's rule is gone: the resolves still go where their alerts are.
    await set_rules(stack, tenant, [("critical", "severity", "critical", ids["Databases"])])
    for mode in ("group", "alert"):
        resolved = await stack.http.post(
            f"{path}?mode={mode}", json=payload("resolved", "2026-12-04T10:05:00Z")
        )
        assert resolved.status_code == 202, resolved.text
        assert [e["service"] for e in resolved.json()["events"]] == [ids["Web"]]
        assert resolved.json()["events"][0]["status"] == "queued"
    async with dispatcher(stack):
        for event in firing.json()["events"] + resolved.json()["events"]:
            await settle(stack, event["dedup_key"], 2)
    for event in resolved.json()["events"]:
        assert await arrived(stack, event["dedup_key"]) == [
            (keys["Web"], "trigger"),
            (keys["Web"], "resolve"),
        ]


async def test_drop_in_paths_take_a_trailing_slash_and_a_key_in_the_path(stack: Stack) -> None:
    tenant, ids, keys = await two_services(stack)
    await set_rules(stack, tenant, [("all", "", None, ids["Databases"])])
    key = tenant["ingest_key"]
    trigger = {
        "event_action": "trigger",
        "dedup_key": "slash",
        "payload": {"summary": "s", "source": "h", "severity": "error"},
    }
    assert (
        await stack.http.post("/v2/enqueue/", json={**trigger, "routing_key": key})
    ).status_code == 202
    # In the path, the URL's key counts; a key in the body (the tool's PagerDuty key) is ignored.
    in_path = await stack.http.post(
        f"/k/{key}/v2/enqueue/", json={**trigger, "routing_key": "R" * 32}
    )
    assert in_path.status_code == 202, in_path.text
    assert (await stack.http.post(f"/k/{key}/v2/enqueue", json=trigger)).status_code == 202
    change = {"payload": {"summary": "Deployed v2", "source": "ci"}}
    assert (
        await stack.http.post("/v2/change/enqueue/", json={**change, "routing_key": key})
    ).status_code == 202
    assert (await stack.http.post(f"/k/{key}/v2/change/enqueue/", json=change)).status_code == 202
    v1 = {"event_type": "trigger", "incident_key": "slash-v1", "description": "s"}
    assert (
        await stack.http.post(
            "/generic/2010-04-15/create_event.json/", json={**v1, "service_key": key}
        )
    ).status_code == 200
    assert (
        await stack.http.post(f"/k/{key}/generic/2010-04-15/create_event.json/", json=v1)
    ).status_code == 200
    wrong = await stack.http.post("/k/pdc_wrong/v2/enqueue/", json={**trigger, "routing_key": key})
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == ["Invalid routing key"]
    # Only the drop-ins: other paths with a slash stay unknown, never redirected.
    assert (await stack.http.post("/v1/alerts/", json={"summary": "s"})).status_code == 404
    assert (await stack.http.post("/v2/enqueue//", json=trigger)).status_code == 404
    assert await stack.count("SELECT count(*) FROM events") == 7
    del keys


async def test_change_events_go_to_pasted_v2_keys_and_are_refused_for_v1_keys(
    stack: Stack,
) -> None:
    tenant = await stack.tenant("Acme")
    v2_key = (await stack.v2_keys())[0]
    await stack.connect_key(tenant, v2_key, "Pasted")
    change = {
        "routing_key": tenant["ingest_key"],
        "payload": {"summary": "Deployed", "source": "ci"},
    }
    accepted = await stack.http.post("/v2/change/enqueue", json=change)
    assert accepted.status_code == 202, accepted.text
    async with dispatcher(stack):

        async def landed() -> bool:
            return any(
                a["endpoint"] == "change" and a["status"] == 202 for a in await stack.arrivals()
            )

        await stack.wait_for(landed, within=30)

    other = await stack.tenant("Legacy")
    response = await stack.http.post(
        f"/admin/v1/tenants/{other['id']}/services",
        json={"name": "Old", "routing_key": "b" * 32, "api": "v1"},
        headers=admin_headers(),
    )
    assert response.status_code == 201
    refused = await stack.http.post(
        "/v2/change/enqueue", json={**change, "routing_key": other["ingest_key"]}
    )
    assert refused.status_code == 400
    [message] = refused.json()["errors"]
    assert "Old is a v1 service key" in message
    assert "change events" in message


async def test_a_pasted_ruleset_key_takes_alerts_but_no_change_events(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    response = await stack.http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Global rules", "routing_key": "R" + "0" * 31, "api": "v2"},
        headers=admin_headers(),
    )
    assert response.status_code == 201, response.text
    change = {"routing_key": tenant["ingest_key"], "payload": {"summary": "Deployed"}}
    refused = await stack.http.post("/v2/change/enqueue", json=change)
    assert refused.status_code == 400
    assert "Global rules is an event ruleset key" in refused.json()["errors"][0]
    alert = await stack.alert(tenant, {"summary": "Disk full"})
    assert alert.status_code == 202
