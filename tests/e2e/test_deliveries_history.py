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
    match = re.search(rf'href="(/settings/deliveries\?[^"]*)" id="page-{name}"', html)
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
    assert "critical" in disk.head
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
    assert "critical (sent as page)" in alertmanager.head
    lag = groups[2]
    assert lag.head.startswith("Queue lag")
    assert "error" in lag.head  # no severity: the map's default
    assert [r.cells["Service"] for r in lag.rows] == ["Payments"]


async def incident_open(stack: Stack, dedup_key: str) -> bool:
    found = await incident(stack, dedup_key)
    return found is not None and found["status"] == "triggered"
