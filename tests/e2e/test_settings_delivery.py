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
    opened = await stack.http.get(link.json()["url"])
    if opened.status_code == 200:
        # Signed in to another tenant already: the link asks first, and the admin confirms.
        token = re.search(r'name="token" value="([^"]+)"', opened.text)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', opened.text)
        assert token is not None
        assert csrf is not None
        confirmed = await stack.http.post(
            "/auth/link", data={"token": token.group(1), "csrf_token": csrf.group(1)}
        )
        assert confirmed.status_code == 303
    page = await stack.http.get("/settings")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


async def test_send_test_event_shows_pagerdutys_answer_and_closes_itself(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    service = await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    csrf = await sign_in(stack, tenant)
    queued = await stack.http.post(f"/settings/services/{service}/test", data={"csrf_token": csrf})
    assert queued.status_code == 303
    event_page = queued.headers["location"]
    assert event_page.startswith("/settings/events/")
    first = await stack.http.get(event_page)
    assert "Test event queued for Checkout. It resolves itself in 60 seconds" in first.text
    assert 'http-equiv="refresh"' in first.text  # it reloads until PagerDuty answers
    # Its resolve is already queued, held back for the stated delay.
    resolve_id = re.search(r'action="/settings/events/([0-9a-f-]+)/send-now"', first.text)
    assert resolve_id is not None
    resolve = await stack.event(tenant, resolve_id.group(1))
    assert (resolve["kind"], resolve["status"], resolve["attempts"]) == ("resolve", "queued", 0)

    async with dispatcher(stack):

        async def answered() -> bool:
            return "delivered" in (await stack.http.get(event_page)).text

        await stack.wait_for(answered)
        page = (await stack.http.get(event_page)).text
        assert 'id="event-status">delivered<' in page
        assert "&#34;status&#34;: &#34;success&#34;" in page or '"status": "success"' in page
        # The resolve still waits: the page says when it goes, and keeps refreshing.
        assert "goes at" in page
        assert 'http-equiv="refresh"' in page
        [opened] = await incidents(stack)
        assert opened["status"] == "triggered"

        sent = await stack.http.post(
            f"/settings/events/{resolve_id.group(1)}/send-now",
            data={"csrf_token": csrf, "back": event_page.rsplit("/", 1)[1]},
        )
        assert sent.status_code == 303
        assert sent.headers["location"] == event_page

        async def closed() -> bool:
            return [i["status"] for i in await incidents(stack)] == ["resolved"]

        await stack.wait_for(closed)
    page = (await stack.http.get(event_page)).text
    assert 'http-equiv="refresh"' not in page
    assert page.count('class="alert-event') == 2
    log = (await stack.http.get("/settings")).text
    assert log.count('class="delivery"') == 2
    assert "pdconnect-test-" in log
    again = await stack.http.post(
        f"/settings/events/{resolve_id.group(1)}/send-now", data={"csrf_token": csrf}
    )
    assert "no longer waiting" in (await stack.http.get(again.headers["location"])).text


async def incidents(stack: Stack) -> list[dict[str, Any]]:
    page = await stack.sandbox.http.get(f"{stack.sandbox.url}/_sandbox/incidents")
    found: list[dict[str, Any]] = page.json()["incidents"]
    return found


async def test_a_test_events_resolve_goes_by_itself_after_the_delay(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    service = await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    csrf = await sign_in(stack, tenant)
    await stack.http.post(f"/settings/services/{service}/test", data={"csrf_token": csrf})
    # The delay, passed: the database's clock decides when it is due.
    await stack.deps.db.execute(
        "UPDATE events SET next_attempt_at = clock_timestamp() WHERE kind = 'resolve'"
    )
    async with dispatcher(stack):

        async def closed() -> bool:
            return [i["status"] for i in await incidents(stack)] == ["resolved"]

        await stack.wait_for(closed)


async def test_send_now_is_for_the_tenants_own_waiting_events(stack: Stack) -> None:
    a, b = await stack.tenant("A"), await stack.tenant("B")
    a_service = await stack.connect_key(a, (await stack.v2_keys())[0], "A's")
    csrf_a = await sign_in(stack, a)
    queued = await stack.http.post(
        f"/settings/services/{a_service}/test", data={"csrf_token": csrf_a}
    )
    page = (await stack.http.get(queued.headers["location"])).text
    match = re.search(r'action="/settings/events/([0-9a-f-]+)/send-now"', page)
    assert match is not None
    csrf_b = await sign_in(stack, b)
    assert (
        await stack.http.post(f"/settings/events/{match.group(1)}/send-now", data={})
    ).status_code == 403
    await stack.http.post(
        f"/settings/events/{match.group(1)}/send-now", data={"csrf_token": csrf_b}
    )
    assert (
        await stack.count(
            "SELECT count(*) FROM events WHERE kind = 'resolve' "
            "AND next_attempt_at > clock_timestamp() + interval '30 seconds'"
        )
        == 1
    )


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
    # Shown again with what was typed and, beside the field, what is wrong in words.
    assert bad.status_code == 422
    assert "That regular expression is missing a &#39;)&#39;." in bad.text
    assert 'value="Broken"' in bad.text
    page = (await stack.http.get("/settings/routing")).text
    assert re.findall(r'class="rule-name"[^>]*>([^<]+)<', page) == [
        "Database team",
        "Everything else",
    ]

    routed = await stack.alert(tenant, {"summary": "s", "labels": {"team": "db"}})
    assert routed.json()["events"][0]["service"] == db
    fallback = await stack.alert(tenant, {"summary": "s", "labels": {"team": "mobile"}})
    assert fallback.json()["events"][0]["service"] == web

    rule_ids = re.findall(r'action="/settings/routes/([0-9a-f-]+)/up"', page)
    moved = await post(f"/settings/routes/{rule_ids[0]}/up", {})
    assert moved.headers["location"] == "/settings/routing"
    page = (await stack.http.get("/settings/routing")).text
    assert "Rule &#39;Everything else&#39; moved up." in page
    assert re.findall(r'class="rule-name"[^>]*>([^<]+)<', page) == [
        "Everything else",
        "Database team",
    ]

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
    assert refused.status_code == 422
    assert "“sev0” must map to critical, error, warning or info" in refused.text
    assert "sev0 = catastrophic</textarea>" in refused.text
    audit = await stack.count(
        """
        SELECT count(*) FROM audit_log WHERE tenant_id = CAST(:t AS uuid)
          AND action IN ('routes.changed', 'severity_map.changed')
        """,
        t=tenant["id"],
    )
    assert audit == 4
