"""Alerts in every format reach the sandbox's PagerDuty, and what a tenant sees of them."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from app.dispatch.policy import DispatchConfig
from app.dispatch.worker import Dispatcher
from tests.conftest import admin_headers
from tests.dispatch.conftest import FAST, Running
from tests.e2e.conftest import Stack

SAMPLES = Path(__file__).resolve().parents[1] / "ingest" / "samples"


def dispatcher(stack: Stack, config: DispatchConfig = FAST) -> Running:
    return Running(
        Dispatcher(
            db=stack.deps.db,
            http=stack.deps.http,
            vault=stack.deps.vault,
            database_url=stack.database_url,
            config=config,
        )
    )


async def incident(stack: Stack, dedup_key: str) -> dict[str, Any] | None:
    page = await stack.sandbox.http.get(
        f"{stack.sandbox.url}/_sandbox/incidents", params={"incident_key": dedup_key}
    )
    incidents = page.json()["incidents"]
    return incidents[-1] if incidents else None


async def test_native_alert_pages_then_resolves(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    key = (await stack.v2_keys())[0]
    await stack.connect_key(tenant, key, "Checkout")
    async with dispatcher(stack):
        accepted = await stack.alert(
            tenant,
            {
                "dedup_key": "disk-db1",
                "summary": "Disk almost full on db1",
                "severity": "P1",
                "source": "db1",
            },
        )
        assert accepted.status_code == 202, accepted.text
        [event] = accepted.json()["events"]
        assert event["status"] == "queued"
        assert event["dedup_key"] == "disk-db1"

        async def triggered() -> bool:
            found = await incident(stack, "disk-db1")
            return found is not None and found["status"] == "triggered"

        await stack.wait_for(triggered)
        opened = await incident(stack, "disk-db1")
        assert opened is not None
        assert opened["title"] == "Disk almost full on db1"
        assert opened["urgency"] == "high"  # P1 mapped to critical

        resolved = await stack.alert(tenant, {"dedup_key": "disk-db1", "status": "resolved"})
        assert resolved.status_code == 202

        async def closed() -> bool:
            found = await incident(stack, "disk-db1")
            return found is not None and found["status"] == "resolved"

        await stack.wait_for(closed)
    detail = await stack.event(tenant, event["id"])
    assert detail["status"] == "delivered"
    assert detail["delivery_attempts"][0]["http_status"] == 202
    assert detail["delivery_attempts"][0]["response"]["status"] == "success"
    assert key not in json.dumps(detail)


async def test_alertmanager_group_pages_with_alertmanagers_own_summary(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Databases")
    firing = json.loads((SAMPLES / "alertmanager-webhook-sample.json").read_text())
    resolved = json.loads((SAMPLES / "alertmanager-webhook-resolved-sample.json").read_text())
    async with dispatcher(stack):
        answer = await stack.http.post(
            f"/k/{tenant['ingest_key']}/v1/alerts/alertmanager", json=firing
        )
        assert answer.status_code == 202, answer.text
        dedup_key = answer.json()["events"][0]["dedup_key"]
        assert dedup_key == "e2f8d8f07e7ff3d39084f0f3f57c92fa746be2d101700a0abe3606c64a6075a0"

        async def state(wanted: str) -> bool:
            found = await incident(stack, dedup_key)
            return found is not None and found["status"] == wanted

        await stack.wait_for(lambda: state("triggered"))
        opened = await incident(stack, dedup_key)
        assert opened is not None
        assert opened["title"] == "[FIRING:1] DiskFull db (db1:9100 critical)"
        await stack.http.post(f"/k/{tenant['ingest_key']}/v1/alerts/alertmanager", json=resolved)
        await stack.wait_for(lambda: state("resolved"))


async def test_drop_in_events_api_v2_answers_like_pagerduty(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    good = {
        "routing_key": tenant["ingest_key"],
        "event_action": "trigger",
        "payload": {"summary": "CPU high", "source": "web1", "severity": "critical"},
    }
    answer = await stack.http.post("/v2/enqueue", json=good)
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "success"
    assert body["message"] == "Event processed"
    assert re.fullmatch(r"[0-9a-f]{32}", body["dedup_key"])

    missing = {**good, "payload": {"source": "web1", "severity": "critical"}}
    refused = await stack.http.post("/v2/enqueue", json=missing)
    assert refused.status_code == 400
    assert refused.json()["status"] == "invalid event"
    assert refused.json()["message"] == "Event object is invalid"
    assert any("summary" in e for e in refused.json()["errors"])

    stranger = await stack.http.post("/v2/enqueue", json={**good, "routing_key": "pdc_unknown"})
    assert stranger.status_code == 400
    assert stranger.json()["errors"] == ["Invalid routing key"]

    v1 = await stack.http.post(
        "/generic/2010-04-15/create_event.json",
        json={
            "service_key": tenant["ingest_key"],
            "event_type": "trigger",
            "description": "Legacy check failed",
        },
    )
    assert v1.status_code == 200
    assert v1.json()["status"] == "success"
    assert v1.json()["incident_key"]
    assert await stack.count("SELECT count(*) FROM events") == 2


async def test_pagerduty_400_fails_after_one_attempt_with_its_errors_shown(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    reason = "'payload.timestamp' is too far in the future"
    await stack.sandbox.http.post(
        f"{stack.sandbox.url}/_sandbox/faults", json={"reject": {"errors": [reason]}}
    )
    async with dispatcher(stack):
        answer = await stack.alert(tenant, {"dedup_key": "x1", "summary": "s"})
        [event] = answer.json()["events"]

        async def failed() -> bool:
            return bool((await stack.event(tenant, event["id"]))["status"] == "failed")

        await stack.wait_for(failed)
        # Time for a retry, were there to be one (FAST retries within 200 ms).
        await asyncio.sleep(0.6)
    detail = await stack.event(tenant, event["id"])
    assert detail["attempts"] == 1
    assert len(detail["delivery_attempts"]) == 1
    assert detail["pagerduty_errors"] == [reason]
    assert len(await stack.arrivals(dedup_key="x1")) == 1

    # The tenant admin sees the same on the settings page.
    link = await stack.http.post(
        f"/admin/v1/tenants/{tenant['id']}/login-links", headers=admin_headers()
    )
    await stack.http.get(link.json()["url"])
    page = await stack.http.get(f"/settings/events/{event['id']}")
    assert page.status_code == 200
    assert reason.replace("'", "&#39;") in page.text
    assert "failed" in (await stack.http.get("/settings")).text


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/alerts", {"severity": "critical"}, 422, "summary"),
        ("/v1/alerts", {"summary": "s", "status": "exploded"}, 422, "status"),
        ("/v1/alerts", {"summary": "s", "labels": {"team": 5}}, 422, "labels"),
        ("/v1/alerts", {"summary": "s", "images": [{"src": 7}]}, 422, "images"),
        ("/v1/alerts", {"summary": "s", "timestamp": "yesterday"}, 422, "timestamp"),
        (
            "/v1/alerts",
            {"alerts": [{"summary": "ok"}, {"summary": "ok", "severty": "x"}]},
            422,
            "alerts[1]",
        ),
        ("/v1/alerts", {"summary": "s", "service": "no such service"}, 422, "service"),
        ("/v1/alerts", [1, 2], 422, ""),
        ("/v1/alerts/alertmanager", {"version": "3", "alerts": []}, 422, "version"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_stores_nothing(
    stack: Stack, path: str, body: Any, status: int, field: str
) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    answer = await stack.alert(tenant, body, path)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    if field:
        assert str(error.get("field", "")).startswith(field), error
    assert error["message"]
    assert await stack.count("SELECT count(*) FROM events") == 0


async def test_malformed_oversized_and_unauthenticated_requests(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    assert (await stack.http.post("/v1/alerts", content=b"{nope", headers=auth)).status_code == 400
    assert (await stack.http.post("/v1/alerts", content=b"", headers=auth)).status_code == 400
    huge = b'{"summary": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    assert (await stack.http.post("/v1/alerts", content=huge, headers=auth)).status_code == 413
    assert (await stack.http.post("/v1/alerts", json={"summary": "s"})).status_code == 401
    wrong = {"Authorization": "Bearer pdc_wrong"}
    assert (
        await stack.http.post("/v1/alerts", json={"summary": "s"}, headers=wrong)
    ).status_code == 401
    assert (
        await stack.http.post("/k/pdc_wrong/v1/alerts", json={"summary": "s"})
    ).status_code == 401
    assert await stack.count("SELECT count(*) FROM events") == 0


async def test_an_alert_that_matches_no_rule_is_refused(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    keys = await stack.v2_keys()
    db_service = await stack.connect_key(tenant, keys[0], "Databases")
    await stack.connect_key(tenant, keys[1], "Web")
    rules = {
        "routes": [
            {
                "name": "db team",
                "conditions": [{"field": "labels.team", "op": "equals", "value": "db"}],
                "service_ids": [db_service],
            }
        ]
    }
    saved = await stack.http.put(
        f"/admin/v1/tenants/{tenant['id']}/routes", json=rules, headers=admin_headers()
    )
    assert saved.status_code == 200, saved.text
    routed = await stack.alert(tenant, {"summary": "s", "labels": {"team": "db"}})
    assert routed.status_code == 202
    assert routed.json()["events"][0]["service"] == db_service
    unrouted = await stack.alert(tenant, {"summary": "s", "labels": {"team": "web"}})
    assert unrouted.status_code == 422
    assert "rule" in unrouted.json()["error"]["message"]
    assert await stack.count("SELECT count(*) FROM events") == 1


async def test_delivery_list_filters_and_pages(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    other = await stack.tenant("Other")
    keys = await stack.v2_keys()
    first = await stack.connect_key(tenant, keys[0], "One")
    await stack.connect_key(tenant, keys[1], "Two")
    await stack.connect_key(other, keys[2], "Theirs")
    for i in range(5):
        await stack.alert(tenant, {"dedup_key": f"one-{i}", "summary": "s", "service": "One"})
    await stack.alert(tenant, {"dedup_key": "two-0", "summary": "s", "service": "Two"})
    await stack.alert(other, {"dedup_key": "theirs", "summary": "s"})
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}

    async def listed(**params: str) -> dict[str, Any]:
        answer = await stack.http.get("/v1/events", params=params, headers=auth)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    everything = await listed()
    assert len(everything["events"]) == 6
    assert "theirs" not in {e["dedup_key"] for e in everything["events"]}
    assert len((await listed(service=first))["events"]) == 5
    assert [e["dedup_key"] for e in (await listed(dedup_key="two-0"))["events"]] == ["two-0"]
    assert len((await listed(status="queued"))["events"]) == 6
    assert (await listed(status="delivered"))["events"] == []
    page = await listed(limit="4")
    assert len(page["events"]) == 4
    rest = await listed(limit="4", before=str(page["next_before"]))
    assert len(rest["events"]) == 2
    assert {e["id"] for e in page["events"]}.isdisjoint(e["id"] for e in rest["events"])
    for bad, field in (
        ({"status": "lost"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"service": "x"}, "service"),
    ):
        answer = await stack.http.get("/v1/events", params=bad, headers=auth)
        assert answer.status_code == 400
        assert answer.json()["error"]["field"] == field
    theirs = (
        await stack.http.get(
            "/v1/events", headers={"Authorization": f"Bearer {other['ingest_key']}"}
        )
    ).json()
    their_id = theirs["events"][0]["id"]
    assert (await stack.http.get(f"/v1/events/{their_id}", headers=auth)).status_code == 404
    assert (await stack.http.get("/v1/events")).status_code == 401
