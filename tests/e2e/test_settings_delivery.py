"""What the tenant admin sees and edits: test events with PagerDuty's answer, the delivery
log, routing rules and the severity table."""

from __future__ import annotations

import re
from typing import Any

import httpx2

from tests.conftest import admin_headers
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher


async def sign_in(stack: Stack, tenant: dict[str, Any]) -> str:
    link = await stack.http.post(
        f"/admin/v1/tenants/{tenant['id']}/login-links", headers=admin_headers()
    )
    await stack.http.get(link.json()["url"])
    page = await stack.http.get("/settings")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


async def test_send_test_event_shows_pagerdutys_answer(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    service = await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    csrf = await sign_in(stack, tenant)
    queued = await stack.http.post(f"/settings/services/{service}/test", data={"csrf_token": csrf})
    assert queued.status_code == 303
    event_page = queued.headers["location"]
    assert event_page.startswith("/settings/events/")
    first = await stack.http.get(event_page)
    assert "Test event queued for Checkout." in first.text
    assert 'http-equiv="refresh"' in first.text  # it reloads until PagerDuty answers

    async with dispatcher(stack):

        async def answered() -> bool:
            return "delivered" in (await stack.http.get(event_page)).text

        await stack.wait_for(answered)
    page = (await stack.http.get(event_page)).text
    assert 'id="event-status">delivered<' in page
    assert "&#34;status&#34;: &#34;success&#34;" in page or '"status": "success"' in page
    assert 'http-equiv="refresh"' not in page
    log = (await stack.http.get("/settings")).text
    assert log.count('class="delivery"') == 1
    assert "pdconnect-test-" in log


async def test_test_event_needs_csrf_and_the_tenants_own_service(stack: Stack) -> None:
    a, b = await stack.tenant("A"), await stack.tenant("B")
    a_service = await stack.connect_key(a, (await stack.v2_keys())[0], "A's")
    csrf = await sign_in(stack, b)
    assert (
        await stack.http.post(f"/settings/services/{a_service}/test", data={})
    ).status_code == 403
    other = await stack.http.post(f"/settings/services/{a_service}/test", data={"csrf_token": csrf})
    assert other.status_code == 404
    assert await stack.count("SELECT count(*) FROM events") == 0


async def test_rules_and_severities_from_the_settings_page(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    keys = await stack.v2_keys()
    db = await stack.connect_key(tenant, keys[0], "Databases")
    web = await stack.connect_key(tenant, keys[1], "Web")
    csrf = await sign_in(stack, tenant)

    async def post(path: str, data: dict[str, Any]) -> httpx2.Response:
        return await stack.http.post(path, data={"csrf_token": csrf, **data})

    await post(
        "/settings/routes",
        {
            "name": "Database team",
            "field": "labels.team",
            "op": "equals",
            "value": "db",
            "service_ids": [db],
        },
    )
    await post("/settings/routes", {"name": "Everything else", "field": "", "service_ids": [web]})
    bad = await post(
        "/settings/routes",
        {
            "name": "Broken",
            "field": "labels.team",
            "op": "regex",
            "value": "(",
            "service_ids": [web],
        },
    )
    assert bad.status_code == 303
    page = (await stack.http.get("/settings")).text
    assert "The rules were not saved" in page
    assert re.findall(r'class="rule-name">([^<]+)<', page) == ["Database team", "Everything else"]

    routed = await stack.alert(tenant, {"summary": "s", "labels": {"team": "db"}})
    assert routed.json()["events"][0]["service"] == db
    fallback = await stack.alert(tenant, {"summary": "s", "labels": {"team": "mobile"}})
    assert fallback.json()["events"][0]["service"] == web

    rule_ids = re.findall(r'action="/settings/routes/([0-9a-f-]+)/up"', page)
    await post(f"/settings/routes/{rule_ids[0]}/up", {})
    page = (await stack.http.get("/settings")).text
    assert re.findall(r'class="rule-name">([^<]+)<', page) == ["Everything else", "Database team"]

    saved = await post(
        "/settings/severity", {"table": "sev0 = critical\nnoise = info", "default": "warning"}
    )
    assert saved.status_code == 303
    alert = await stack.alert(tenant, {"summary": "s", "severity": "SEV0"})
    body = await stack.event(tenant, alert.json()["events"][0]["id"])
    assert body["body"]["payload"]["severity"] == "critical"
    unknown = await stack.alert(tenant, {"summary": "s", "severity": "whatever"})
    body = await stack.event(tenant, unknown.json()["events"][0]["id"])
    assert body["body"]["payload"]["severity"] == "warning"
    refused = await post(
        "/settings/severity", {"table": "sev0 = catastrophic", "default": "warning"}
    )
    assert refused.status_code == 303
    assert "The severity table was not saved" in (await stack.http.get("/settings")).text
    audit = await stack.count(
        """
        SELECT count(*) FROM audit_log WHERE tenant_id = CAST(:t AS uuid)
          AND action IN ('routes.changed', 'severity_map.changed')
        """,
        t=tenant["id"],
    )
    assert audit == 4
