"""Rules that accept without paging, the tenant's choice for alerts no rule matches, and rule
templates that shape the PagerDuty event (summary, fields, details, links, dedup key) for every
input format, checked when saved and previewed against a recent alert."""

from __future__ import annotations

from typing import Any

from tests.conftest import admin_headers
from tests.e2e.conftest import Stack, e2e_settings, live, stack
from tests.e2e.test_alert_life import settle
from tests.e2e.test_delivery import dispatcher, incident
from tests.ingest.helpers import sample


async def put_routes(stack: Stack, tenant: dict[str, Any], body: dict[str, Any]) -> Any:
    return await stack.http.put(
        f"/admin/v1/tenants/{tenant['id']}/routes", json=body, headers=admin_headers()
    )


async def setup(stack: Stack) -> tuple[dict[str, Any], str, str]:
    tenant = await stack.tenant("Acme")
    keys = await stack.v2_keys()
    ops = await stack.connect_key(tenant, keys[0], "Ops")
    await stack.connect_key(tenant, keys[1], "Other")
    return tenant, ops, keys[0]


async def suppressed_events(stack: Stack, tenant: dict[str, Any]) -> list[dict[str, Any]]:
    listed = await stack.http.get(
        "/v1/events",
        params={"status": "suppressed"},
        headers={"Authorization": f"Bearer {tenant['ingest_key']}"},
    )
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()["events"]
    return found


async def test_a_dont_page_rule_and_accepting_unmatched_alerts(stack: Stack) -> None:
    tenant, ops, _ = await setup(stack)
    saved = await put_routes(
        stack,
        tenant,
        {
            "routes": [
                {
                    "name": "ignore staging",
                    "action": "suppress",
                    "conditions": [{"field": "labels.env", "op": "equals", "value": "staging"}],
                },
                {
                    "name": "critical",
                    "conditions": [{"field": "severity", "op": "equals", "value": "critical"}],
                    "service_ids": [ops],
                },
            ]
        },
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["routes"][0]["action"] == "suppress"
    assert saved.json()["routes"][0]["service_ids"] == []
    assert saved.json()["unmatched"] == "refuse"
    staging = await stack.alert(
        tenant, {"dedup_key": "st", "summary": "Staging", "labels": {"env": "staging"}}
    )
    assert staging.status_code == 202, staging.text
    assert staging.json()["events"][0]["status"] == "suppressed"
    unmatched = await stack.alert(tenant, {"dedup_key": "um", "summary": "Nobody's"})
    assert unmatched.status_code == 422
    # The tenant now accepts what matches nothing, without paging.
    chosen = await put_routes(
        stack, tenant, {"routes": saved.json()["routes"], "unmatched": "suppress"}
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["unmatched"] == "suppress"
    got = await stack.http.get(f"/admin/v1/tenants/{tenant['id']}/routes", headers=admin_headers())
    assert got.json()["unmatched"] == "suppress"
    accepted = await stack.alert(tenant, {"dedup_key": "um", "summary": "Nobody's"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["events"][0]["status"] == "suppressed"
    shown = {e["dedup_key"]: e["last_error"] for e in await suppressed_events(stack, tenant)}
    assert "ignore staging" in shown["st"]
    assert "no routing rule matches" in shown["um"]
    # Their resolves are recorded too, and nothing reaches PagerDuty.
    resolved = await stack.alert(tenant, {"dedup_key": "st", "status": "resolved"})
    assert resolved.json()["events"][0]["status"] == "suppressed"
    async with dispatcher(stack):
        await stack.alert(tenant, {"dedup_key": "c", "summary": "C", "severity": "critical"})
        await settle(stack, "c", 1)
    assert await stack.arrivals(dedup_key="st") == []
    assert await stack.arrivals(dedup_key="um") == []
    bad = await put_routes(stack, tenant, {"routes": [], "unmatched": "maybe"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "unmatched"


TEMPLATES = {
    "summary": '[{{ labels.env | default:"prod" | upper }}] {{ summary | truncate:40 }}',
    "source": "{{ labels.instance }}",
    "component": '{{ labels.service | default:"unknown" }}',
    "class": "disk",
    "severity": '{{ labels.level | default:"warning" }}',
    "custom_details": {"runbook": "https://runbooks.example/{{ labels.alertname }}"},
    "links": [{"href": "https://vendor.example/alerts/{{ labels.alertname }}", "text": "Open"}],
}


async def templated(stack: Stack, tenant: dict[str, Any], ops: str, **extra: Any) -> None:
    saved = await put_routes(
        stack,
        tenant,
        {"routes": [{"name": "all", "service_ids": [ops], "templates": {**TEMPLATES, **extra}}]},
    )
    assert saved.status_code == 200, saved.text


async def body_of(stack: Stack, tenant: dict[str, Any], answer: Any) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    event = await stack.event(tenant, answer.json()["events"][0]["id"])
    body: dict[str, Any] = event["body"]
    return body


async def test_templates_shape_native_alertmanager_and_v2_alerts(stack: Stack) -> None:
    tenant, ops, _ = await setup(stack)
    await templated(stack, tenant, ops)
    native = await body_of(
        stack,
        tenant,
        await stack.alert(
            tenant,
            {
                "dedup_key": "n1",
                "summary": "Disk almost full on a very long host name that goes on",
                "labels": {"env": "staging", "instance": "db1", "alertname": "DiskFull"},
            },
        ),
    )
    payload = native["payload"]
    assert payload["summary"] == "[STAGING] " + "Disk almost full on a very long host name"[:40]
    assert payload["source"] == "db1"
    assert payload["component"] == "unknown"
    assert payload["class"] == "disk"
    assert payload["severity"] == "warning"
    assert payload["custom_details"]["runbook"] == "https://runbooks.example/DiskFull"
    assert native["links"] == [{"href": "https://vendor.example/alerts/DiskFull", "text": "Open"}]

    am = await body_of(
        stack,
        tenant,
        await stack.http.post(
            f"/k/{tenant['ingest_key']}/v1/alerts/alertmanager",
            json=sample("alertmanager-webhook-sample.json"),
        ),
    )
    assert am["payload"]["summary"].startswith("[PROD] [FIRING:1] DiskFull db")
    assert am["payload"]["source"] == "db1:9100"
    assert am["payload"]["component"] == "db"
    assert am["payload"]["custom_details"]["runbook"] == "https://runbooks.example/DiskFull"

    v2 = await stack.http.post(
        "/v2/enqueue",
        json={
            "routing_key": tenant["ingest_key"],
            "event_action": "trigger",
            "dedup_key": "v2-1",
            "payload": {
                "summary": "Checkout slow",
                "source": "web-3",
                "severity": "error",
                "custom_details": {"region": "eu"},
            },
        },
    )
    assert v2.status_code == 202, v2.text
    [event] = (
        await stack.http.get(
            "/v1/events",
            params={"dedup_key": "v2-1"},
            headers={"Authorization": f"Bearer {tenant['ingest_key']}"},
        )
    ).json()["events"]
    shaped = (await stack.event(tenant, event["id"]))["body"]
    assert shaped["payload"]["summary"] == "[PROD] Checkout slow"
    # No instance label: an empty result keeps the sender's own source.
    assert shaped["payload"]["source"] == "web-3"
    assert shaped["payload"]["custom_details"]["region"] == "eu"


async def test_a_template_that_errors_is_refused_at_save_and_previewed(stack: Stack) -> None:
    tenant, ops, _ = await setup(stack)
    for templates, field in (
        ({"summary": "{{ labels.x | shout }}"}, "routes[0].templates.summary"),
        ({"summary": "{{ labels.x"}, "routes[0].templates.summary"),
        ({"dedup_key": "{{ nonsense }}"}, "routes[0].templates.dedup_key"),
        ({"title": "x"}, "routes[0].templates.title"),
        ({"summary": "{{ summary | truncate:0 }}"}, "routes[0].templates.summary"),
        # PostgreSQL's jsonb holds no NUL character: refused by name, not a 500 at the write.
        ({"links": [{"href": "\u0000\f"}]}, "routes[0].templates.links[0].href"),
        ({"custom_details": {"a\u0000": "x"}}, "routes[0].templates.custom_details"),
    ):
        refused = await put_routes(
            stack,
            tenant,
            {"routes": [{"name": "all", "service_ids": [ops], "templates": templates}]},
        )
        assert refused.status_code == 422, templates
        assert refused.json()["error"]["field"] == field
    saved = await stack.http.get(
        f"/admin/v1/tenants/{tenant['id']}/routes", headers=admin_headers()
    )
    assert saved.json()["routes"] == []
    # A preview against the tenant's most recent alert.
    recent = await stack.alert(
        tenant,
        {"dedup_key": "r", "summary": "Recent", "labels": {"instance": "db9"}, "service": ops},
    )
    assert recent.status_code == 202, recent.text
    preview = await stack.http.post(
        f"/admin/v1/tenants/{tenant['id']}/routes/preview",
        json={"templates": {"summary": "{{ labels.instance }}: {{ summary }} {{ labels.env }}"}},
        headers=admin_headers(),
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["rendered"]["summary"] == "db9: Recent "
    assert preview.json()["warnings"] == [
        'labels.env has no value in this alert and renders empty; add | default:"…"'
    ]


async def test_a_templated_dedup_key_groups_alerts_into_one_incident(stack: Stack) -> None:
    tenant, ops, key = await setup(stack)
    await templated(stack, tenant, ops, dedup_key="{{ labels.cluster }}/{{ labels.alertname }}")
    async with dispatcher(stack):
        for host in ("db1", "db2", "db3"):
            answer = await stack.alert(
                tenant,
                {
                    "dedup_key": f"disk-{host}",
                    "summary": f"Disk full on {host}",
                    "labels": {"cluster": "eu-1", "alertname": "DiskFull", "instance": host},
                },
            )
            assert answer.status_code == 202, answer.text
            assert answer.json()["events"][0]["dedup_key"] == "eu-1/DiskFull"
        other = await stack.alert(
            tenant,
            {
                "summary": "Disk full in us",
                "labels": {"cluster": "us-1", "alertname": "DiskFull"},
            },
        )
        assert other.json()["events"][0]["dedup_key"] == "us-1/DiskFull"
        await settle(stack, "eu-1/DiskFull", 3)
        # The resolve carries the labels too, so it finds the grouped alert.
        resolve = await stack.alert(
            tenant,
            {
                "dedup_key": "disk-db1",
                "status": "resolved",
                "labels": {"cluster": "eu-1", "alertname": "DiskFull"},
            },
        )
        assert resolve.json()["events"][0]["dedup_key"] == "eu-1/DiskFull"
        arrivals = await settle(stack, "eu-1/DiskFull", 4)
    assert arrivals == [(key, "trigger")] * 3 + [(key, "resolve")]
    found = await incident(stack, "eu-1/DiskFull")
    assert found is not None
    assert found["status"] == "resolved"
    page = await stack.sandbox.http.get(f"{stack.sandbox.url}/_sandbox/incidents")
    keys = [i["incident_key"] for i in page.json()["incidents"]]
    assert sorted(keys) == ["eu-1/DiskFull", "us-1/DiskFull"]


__all__ = ["e2e_settings", "live", "stack"]
