"""The delivery history a tenant admin reads (`GET /settings/deliveries`) and an event's page:
an alert's events together with its summary, severity and PagerDuty's state, statuses in
words, why an event waits, filters, counts and pages that a link can share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from app.dispatch.policy import DispatchConfig
from tests.conftest import admin_headers
from tests.dispatch.conftest import FAST
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher, incident
from tests.e2e.test_settings_delivery import sign_in

SAMPLES = Path(__file__).resolve().parents[1] / "ingest" / "samples"
EVENT_LINK = re.compile(r'href="/settings/events/([0-9a-f-]{36})"')


@dataclass
class Row:
    kind: str
    status: str
    event_id: str
    cells: dict[str, str] = field(default_factory=dict)


@dataclass
class Group:
    head: str = ""
    rows: list[Row] = field(default_factory=list)


class _History(HTMLParser):
    """The history table as a reader sees it: each alert's heading and its rows' cells."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: list[Group] = []
        self.in_head = False
        self.cell: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "tbody" and "alert-group" in classes:
            self.groups.append(Group())
        elif tag == "tr" and "alert-head" in classes:
            self.in_head = True
        elif tag == "tr" and "delivery" in classes:
            self.groups[-1].rows.append(
                Row(a["data-kind"] or "", a["data-status"] or "", a["data-event"] or "")
            )
        elif tag == "td" and self.groups and self.groups[-1].rows:
            self.cell, self.text = a.get("data-label"), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.in_head = False
        elif tag == "td" and self.cell is not None:
            self.groups[-1].rows[-1].cells[self.cell] = " ".join("".join(self.text).split())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.in_head:
            self.groups[-1].head += data
        elif self.cell is not None:
            self.text.append(data)


def history(html: str) -> list[Group]:
    parser = _History()
    parser.feed(html)
    for group in parser.groups:
        group.head = " ".join(group.head.split())
    return parser.groups


def count_line(html: str) -> str:
    match = re.search(r'id="history-count"[^>]*>(.*?)</p>', html, re.S)
    assert match is not None
    return " ".join(unescape(re.sub(r"<[^>]+>", "", match.group(1))).split())


def link(html: str, name: str) -> str | None:
    match = re.search(rf'href="(/settings/deliveries[^"]*)" id="page-{name}"', html)
    return unescape(match.group(1)) if match else None


async def everything_to(stack: Stack, tenant: dict[str, Any], service: str) -> None:
    saved = await stack.http.put(
        f"/admin/v1/tenants/{tenant['id']}/routes",
        json={"routes": [{"name": "Everything", "conditions": [], "service_ids": [service]}]},
        headers=admin_headers(),
    )
    assert saved.status_code == 200, saved.text


async def two_services(stack: Stack) -> tuple[dict[str, Any], str, str]:
    tenant = await stack.tenant("Acme")
    keys = await stack.v2_keys()
    checkout = await stack.connect_key(tenant, keys[0], "Checkout")
    payments = await stack.connect_key(tenant, keys[1], "Payments")
    return tenant, checkout, payments


async def test_an_alerts_events_are_together_with_summary_severity_and_pagerdutys_state(
    stack: Stack,
) -> None:
    tenant, checkout, payments = await two_services(stack)
    await everything_to(stack, tenant, payments)
    firing = json.loads((SAMPLES / "alertmanager-webhook-sample.json").read_text())
    firing["alerts"][0]["annotations"]["summary"] = "Replica lagging on db2"
    async with dispatcher(stack):
        trigger = await stack.alert(
            tenant,
            {
                "dedup_key": "disk-db1",
                "summary": "Disk almost full on db1",
                "severity": "P1",
                "service": checkout,
            },
        )
        [trigger_event] = trigger.json()["events"]
        other = await stack.alert(
            tenant, {"dedup_key": "queue-lag", "summary": "Queue lag", "service": payments}
        )
        assert other.status_code == 202
        # Alertmanager, one alert per alert: its summary annotation, its severity label.
        firing["alerts"][0]["labels"]["severity"] = "page"
        am = await stack.http.post(
            f"/k/{tenant['ingest_key']}/v1/alerts/alertmanager?mode=alert", json=firing
        )
        assert am.status_code == 202, am.text
        await stack.wait_for(lambda: incident_open(stack, "disk-db1"))
        opened = await incident(stack, "disk-db1")
        assert opened is not None
        # Ada acknowledges in PagerDuty; the webhook is not wired for a pasted key, so the
        # state is recorded as the receiver records it.
        await stack.deps.db.execute(
            """
            INSERT INTO incident_states (service_id, dedup_key, tenant_id, incident_id, status,
                changed_by, changed_at)
            VALUES (CAST(:s AS uuid), 'disk-db1', CAST(:t AS uuid), :i, 'acknowledged',
                'Ada Lovelace', now())
            """,
            {"s": checkout, "t": tenant["id"], "i": opened["id"]},
        )
        await stack.alert(tenant, {"dedup_key": "disk-db1", "status": "resolved"})

        async def all_delivered() -> bool:
            return await stack.count("SELECT count(*) FROM events WHERE status <> 'delivered'") == 0

        await stack.wait_for(all_delivered)
    await sign_in(stack, tenant)
    page = await stack.http.get("/settings/deliveries")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "History is kept for 30 days" in page.text
    assert count_line(page.text) == "4 deliveries"
    groups = history(page.text)
    # Newest alert first: the disk alert, whose resolve came last.
    assert len(groups) == 3
    disk = groups[0]
    assert disk.head.startswith("Disk almost full on db1")
    # A native alert's own word is kept too (noted by the mapping).
    assert "critical (the sender's \u201cP1\u201d)" in disk.head
    assert "In PagerDuty: acknowledged by Ada Lovelace" in disk.head
    assert "dedup key disk-db1" in disk.head
    assert [(r.kind, r.cells["Status"], r.cells["Service"]) for r in disk.rows] == [
        ("trigger", "Delivered", "Checkout"),
        ("resolve", "Delivered", "Checkout"),
    ]
    assert disk.rows[0].event_id == trigger_event["id"]
    assert disk.rows[0].cells["Attempts"] == "1"
    alertmanager = groups[1]
    assert alertmanager.rows[0].kind == "trigger"
    assert alertmanager.head.startswith("Replica lagging on db2")
    # The sender's word and what it was mapped to.
    assert "critical (the sender's \u201cpage\u201d)" in alertmanager.head
    lag = groups[2]
    assert lag.head.startswith("Queue lag")
    assert "error" in lag.head  # no severity: the map's default
    assert [r.cells["Service"] for r in lag.rows] == ["Payments"]


async def incident_open(stack: Stack, dedup_key: str) -> bool:
    found = await incident(stack, dedup_key)
    return found is not None and found["status"] == "triggered"


async def test_filters_by_status_service_and_text_with_their_counts(stack: Stack) -> None:
    tenant, checkout, payments = await two_services(stack)
    alerts = [
        {"dedup_key": f"cpu-{n}", "summary": f"CPU high on web{n}", "service": checkout}
        for n in range(12)
    ] + [
        {"dedup_key": f"card-{n}", "summary": f"Card declines rising ({n})", "service": payments}
        for n in range(5)
    ]
    assert (await stack.alert(tenant, {"alerts": alerts})).status_code == 202
    # A resolve of an alert never sent, which no rule routes: recorded, not sent.
    never = await stack.alert(tenant, {"dedup_key": "never-sent", "status": "resolved"})
    assert never.json()["events"][0]["status"] == "skipped"
    # Payments is removed: its events, still waiting, are cancelled.
    removed = await stack.http.delete(
        f"/admin/v1/tenants/{tenant['id']}/services/{payments}", headers=admin_headers()
    )
    assert removed.status_code in (200, 204), removed.text
    # Nothing is sent in this test (no dispatcher): Checkout's events wait.
    await sign_in(stack, tenant)

    everything = (await stack.http.get("/settings/deliveries")).text
    assert count_line(everything) == "18 deliveries"
    skipped = history(everything)[0]
    assert skipped.head.startswith("Resolve of an alert pdconnect never sent")
    assert skipped.rows[0].cells["Status"] == "Not sent: nothing to resolve"
    assert skipped.rows[0].cells["Service"] == "—"
    cancelled = [g for g in history(everything) if g.rows[0].status == "cancelled"]
    assert len(cancelled) == 5
    status = cancelled[0].rows[0].cells["Status"]
    assert status.startswith("Cancelled: the service was removed by")
    assert "cancelled cancelled" not in everything.lower()
    assert cancelled[0].rows[0].cells["Service"] == "—"

    waiting = (await stack.http.get("/settings/deliveries", params={"status": "waiting"})).text
    assert count_line(waiting) == "12 deliveries match these filters"
    rows = [r for g in history(waiting) for r in g.rows]
    assert {r.status for r in rows} == {"queued"}
    assert {r.cells["Status"] for r in rows} == {"Queued"}
    # What was asked stays in the form, so the filter can be changed from there.
    assert '<option value="waiting" selected>' in waiting

    by_service = (await stack.http.get("/settings/deliveries", params={"service": checkout})).text
    assert count_line(by_service) == "12 deliveries match these filters"
    assert f'<option value="{checkout}" selected>' in by_service

    text = (await stack.http.get("/settings/deliveries", params={"q": "web1"})).text
    # "web1", "web10" and "web11": the summary, without case.
    assert count_line(text) == "3 deliveries match these filters"
    assert sorted(g.head.split(" dedup key ")[0] for g in history(text)) == [
        "CPU high on web1 error",
        "CPU high on web10 error",
        "CPU high on web11 error",
    ]
    by_key = (await stack.http.get("/settings/deliveries", params={"q": "CARD-3"})).text
    assert count_line(by_key) == "1 delivery matches these filters"
    # An event of no alert is found by its dedup key too.
    lone = (await stack.http.get("/settings/deliveries", params={"q": "never"})).text
    assert [g.rows[0].status for g in history(lone)] == ["skipped"]
    not_sent = (await stack.http.get("/settings/deliveries", params={"status": "skipped"})).text
    assert count_line(not_sent) == "1 delivery matches these filters"
    # LIKE's own wildcards are searched for as themselves.
    assert count_line(
        (await stack.http.get("/settings/deliveries", params={"q": "%"})).text
    ).startswith("0 deliveries")
    combined = await stack.http.get(
        "/settings/deliveries", params={"q": "declines", "status": "cancelled"}
    )
    assert count_line(combined.text) == "5 deliveries match these filters"
    none = (await stack.http.get("/settings/deliveries", params={"status": "failed"})).text
    assert count_line(none) == "0 deliveries match these filters"
    assert "No delivery matches these filters." in none


async def test_a_filter_it_cannot_read_is_said_beside_it_not_a_500(stack: Stack) -> None:
    tenant, checkout, _ = await two_services(stack)
    other = await stack.tenant("Globex")
    theirs = await stack.connect_key(other, (await stack.v2_keys())[2], "Theirs")
    await stack.alert(tenant, {"summary": "s", "service": checkout})
    await sign_in(stack, tenant)
    for params, field_id, words in [
        ({"status": "exploded"}, "filter-status-error", "Pick a status from the list"),
        ({"service": "not-an-id"}, "filter-service-error", "that one is not connected"),
        ({"service": theirs}, "filter-service-error", "that one is not connected"),
        ({"q": "x" * 300}, "filter-text-error", "at most 200 characters"),
        ({"q": "a\x00b"}, "filter-text-error", "cannot be searched for"),
        ({"before": "abc"}, "page-error", "is not one of this history"),
        ({"after": str(2**70)}, "page-error", "is not one of this history"),
    ]:
        page = await stack.http.get("/settings/deliveries", params=params)
        assert page.status_code == 400, params
        assert f'id="{field_id}"' in page.text, params
        assert words in unescape(page.text), params
        # The rest of the page is there: the history without that filter.
        assert count_line(page.text).startswith("1 delivery"), params


async def test_pages_reach_the_oldest_by_keyset_and_say_the_total(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    alerts = [{"dedup_key": f"a{n:03}", "summary": f"Alert number {n:03}"} for n in range(120)]
    assert (await stack.alert(tenant, {"alerts": alerts})).status_code == 202
    await sign_in(stack, tenant)
    first = (await stack.http.get("/settings/deliveries")).text
    assert count_line(first) == "120 deliveries"
    heads = [g.head[:16] for g in history(first)]
    assert heads[0] == "Alert number 119"
    assert len(heads) == 50
    assert link(first, "newer") is None
    assert link(first, "newest") is None
    older = link(first, "older")
    assert older is not None
    assert re.search(r"before=\d+", older)

    second = (await stack.http.get(older)).text
    assert next(g.head[:16] for g in history(second)) == "Alert number 069"
    assert count_line(second) == "120 deliveries"
    newer = link(second, "newer")
    assert newer is not None
    assert [g.head[:16] for g in history((await stack.http.get(newer)).text)] == heads

    oldest_link = link(first, "oldest")
    assert oldest_link is not None
    oldest = (await stack.http.get(oldest_link)).text
    shown = [g.head[:16] for g in history(oldest)]
    assert shown[-1] == "Alert number 000"
    assert len(shown) == 50
    assert link(oldest, "older") is None
    assert link(oldest, "oldest") is None
    assert link(oldest, "newest") == "/settings/deliveries"

    # Filters ride along the pages' links, so a link to a page can be shared as it is.
    filtered = (await stack.http.get("/settings/deliveries", params={"q": "number 0"})).text
    assert count_line(filtered) == "100 deliveries match these filters"
    older = link(filtered, "older")
    assert older is not None
    assert "q=number+0" in older
    page_two = (await stack.http.get(older)).text
    assert count_line(page_two) == "100 deliveries match these filters"
    assert [g.head[:16] for g in history(page_two)][-1] == "Alert number 000"
    assert link(page_two, "older") is None
    assert 'value="number 0"' in page_two


async def test_an_event_waits_for_the_rate_budget_and_says_for_how_long(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout", limit=2)
    alerts = [{"dedup_key": f"b{n}", "summary": f"Burst {n}"} for n in range(5)]
    assert (await stack.alert(tenant, {"alerts": alerts})).status_code == 202
    async with dispatcher(stack):

        async def two_sent_and_resting() -> bool:
            sent = await stack.count("SELECT count(*) FROM events WHERE status = 'delivered'")
            resting = await stack.count(
                "SELECT count(*) FROM dispatch_keys WHERE paused_until > clock_timestamp()"
            )
            return sent == 2 and resting == 1

        await stack.wait_for(two_sent_and_resting)
        await sign_in(stack, tenant)
        page = (await stack.http.get("/settings/deliveries")).text
        waiting = [r for g in history(page) for r in g.rows if r.status == "queued"]
        assert len(waiting) == 3
        for row in waiting:
            assert re.fullmatch(
                r"Waiting for the rate budget the next of its key's events goes in about \d+ s",
                row.cells["Status"],
            )
            assert row.cells["Attempts"] == "0"
        # The first to wait goes when the first send leaves the budget's window (62 s); the
        # third takes the first send's slot once more, a window later. (Newest first.)
        third = await waits(stack, waiting[-1].event_id)
        assert re.fullmatch(
            r"Waiting for the rate budget, about (\d+) s: its routing key may send 2 events a "
            r"minute\.",
            third,
        ), third
        assert 1 <= int(re.findall(r"about (\d+) s", third)[0]) <= 62
        fifth = await waits(stack, waiting[0].event_id)
        assert fifth == (
            "Waiting for the rate budget, about 2 min: its routing key may send 2 events a "
            "minute; 2 of its events are ahead of this one."
        )
        detail = (await stack.http.get(f"/settings/events/{waiting[0].event_id}")).text
        assert 'http-equiv="refresh"' in detail


async def waits(stack: Stack, event_id: str) -> str:
    page = unescape((await stack.http.get(f"/settings/events/{event_id}")).text)
    match = re.search(r'id="waits">([^<]+)<', page)
    assert match is not None
    return match.group(1)


SLOW_RETRIES = DispatchConfig(
    concurrency=4,
    retry_base=timedelta(seconds=80),
    retry_cap=timedelta(seconds=80),
    poll_interval=timedelta(milliseconds=100),
    lease=timedelta(seconds=5),
)


async def test_a_retry_says_when_and_after_which_answer(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout")
    await stack.sandbox.http.post(
        f"{stack.sandbox.url}/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503}
    )
    answer = await stack.alert(tenant, {"dedup_key": "r1", "summary": "Retried"})
    [event] = answer.json()["events"]
    async with dispatcher(stack, SLOW_RETRIES):

        async def tried() -> bool:
            now = await stack.event(tenant, event["id"])
            return bool(now["attempts"] == 1 and now["status"] == "queued")

        await stack.wait_for(tried)
    await sign_in(stack, tenant)
    [group] = history((await stack.http.get("/settings/deliveries")).text)
    assert re.fullmatch(
        r"Retrying next attempt in about \d+ s after PagerDuty answered 503",
        group.rows[0].cells["Status"],
    )
    detail = unescape((await stack.http.get(f"/settings/events/{event['id']}")).text)
    retry_words = r'id="waits">Next attempt in about \d+ s after PagerDuty answered 503\.<'
    assert re.search(retry_words, detail)
    # Its resolve waits for it: PagerDuty gets an alert's events in order.
    resolve = await stack.alert(tenant, {"dedup_key": "r1", "status": "resolved"})
    assert await waits(stack, resolve.json()["events"][0]["id"]) == (
        "Waiting for the earlier trigger of this alert to this service: PagerDuty gets an "
        "alert's events in the order they were accepted."
    )
    assert re.search(r'class="attempt">.*?>503<', detail, re.S)


async def test_events_of_a_key_pagerduty_does_not_know_are_held_in_words(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, "u" * 32, "Forgotten")
    answer = await stack.alert(tenant, {"dedup_key": "h1", "summary": "Held one"})
    [event] = answer.json()["events"]
    async with dispatcher(stack, FAST):

        async def held() -> bool:
            return bool((await stack.event(tenant, event["id"]))["status"] == "held")

        await stack.wait_for(held)
    await sign_in(stack, tenant)
    held_page = await stack.http.get("/settings/deliveries", params={"status": "held"})
    [group] = history(held_page.text)
    assert group.rows[0].cells["Status"] == "Held: PagerDuty does not know this routing key"


async def test_the_event_page_shows_what_was_sent_and_how_it_was_routed(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    key = (await stack.v2_keys())[0]
    await stack.connect_key(tenant, key, "Checkout")
    async with dispatcher(stack):
        answer = await stack.alert(
            tenant,
            {
                "dedup_key": "disk-db1",
                "summary": "Disk almost full on db1",
                "severity": "P1",
                "labels": {"team": "db"},
            },
        )
        [event] = answer.json()["events"]
        resolve = await stack.alert(tenant, {"dedup_key": "disk-db1", "status": "resolved"})
        [resolve_event] = resolve.json()["events"]

        async def delivered() -> bool:
            return bool((await stack.event(tenant, resolve_event["id"]))["status"] == "delivered")

        await stack.wait_for(delivered)
    await sign_in(stack, tenant)
    page = await stack.http.get(f"/settings/events/{event['id']}")
    text = unescape(page.text)
    assert key not in page.text
    assert 'id="event-summary">Disk almost full on db1<' in text
    assert 'id="event-status">delivered<' in text
    assert (
        'id="severity">critical <span class="muted">(the sender said P1; mapped by your '
        "severity table)</span><" in text
    )
    # One service and no rules: it went to the only one, and the page says so.
    assert 'id="routing">Sent to Checkout: the only connected service (no routing rules).<' in text
    body = re.search(r'id="sent-body"[^>]*>(.*?)</pre>', page.text, re.S)
    assert body is not None
    sent = json.loads(unescape(body.group(1)))
    assert sent["event_action"] == "trigger"
    assert sent["payload"]["severity"] == "critical"
    assert sent["payload"]["custom_details"] == {"labels": {"team": "db"}}
    assert "routing_key" not in sent
    assert re.search(r'class="attempt">.*?Accepted.*?>202<', page.text, re.S)
    # The resolve follows its alert, and the page says so.
    follow = unescape((await stack.http.get(f"/settings/events/{resolve_event['id']}")).text)
    assert 'id="event-summary">Disk almost full on db1<' in follow
    assert "Follows its alert: it goes to the services its trigger went to." in follow
    # Another tenant's admin finds nothing there.
    other = await stack.tenant("Globex")
    await sign_in(stack, other)
    assert (await stack.http.get(f"/settings/events/{event['id']}")).status_code == 404
    assert count_line((await stack.http.get("/settings/deliveries")).text) == "0 deliveries"


async def test_the_event_page_names_the_rule_that_matched(stack: Stack) -> None:
    tenant, checkout, payments = await two_services(stack)
    saved = await stack.http.put(
        f"/admin/v1/tenants/{tenant['id']}/routes",
        json={
            "routes": [
                {
                    "name": "Database",
                    "conditions": [{"field": "labels.team", "op": "equals", "value": "db"}],
                    "service_ids": [payments],
                },
                {"name": "Everything else", "conditions": [], "service_ids": [checkout]},
            ]
        },
        headers=admin_headers(),
    )
    assert saved.status_code == 200, saved.text
    db_alert = await stack.alert(tenant, {"summary": "Disk full", "labels": {"team": "db"}})
    other = await stack.alert(tenant, {"summary": "CPU high", "labels": {"team": "web"}})
    named = await stack.alert(tenant, {"summary": "Named", "service": checkout})
    await sign_in(stack, tenant)

    async def routing_of(answer: Any) -> str:
        [event] = answer.json()["events"]
        page = unescape((await stack.http.get(f"/settings/events/{event['id']}")).text)
        found = re.search(r'id="routing">(.*?)<', page)
        assert found is not None
        return found.group(1)

    assert await routing_of(db_alert) == "Sent to Payments: routing rule “Database” matched."
    assert await routing_of(other) == ("Sent to Checkout: routing rule “Everything else” matched.")
    assert await routing_of(named) == "Sent to Checkout: the service the alert names."


async def test_an_alertmanager_group_shows_its_summary_not_its_hash(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Databases")
    firing = json.loads((SAMPLES / "alertmanager-webhook-sample.json").read_text())
    answer = await stack.http.post(f"/k/{tenant['ingest_key']}/v1/alerts/alertmanager", json=firing)
    dedup_key = answer.json()["events"][0]["dedup_key"]
    assert len(dedup_key) == 64
    await sign_in(stack, tenant)
    [group] = history((await stack.http.get("/settings/deliveries")).text)
    assert group.head.startswith("[FIRING:1] DiskFull db (db1:9100 critical) critical")
    assert group.head.endswith(f"dedup key {dedup_key}")
