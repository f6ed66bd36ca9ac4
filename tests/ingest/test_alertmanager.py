"""Alertmanager's webhook, checked against what Alertmanager's own PagerDuty notifier sent for
the same alerts (samples captured from a real Alertmanager)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from app.errors import InputError
from app.ingest.alert import Link
from app.ingest.alertmanager import parse_alertmanager, sorted_pairs, subject
from tests.ingest.helpers import DELETE, outbound, sample, with_value

FIRING = "alertmanager-webhook-sample.json"
RESOLVED = "alertmanager-webhook-resolved-sample.json"


def expected(pagerduty_sample: str, webhook: dict[str, Any]) -> dict[str, Any]:
    """Alertmanager's body minus the routing key (the dispatcher adds it), with client_url
    from this webhook: the pair was captured under a different externalURL."""
    body = sample(pagerduty_sample)
    del body["routing_key"]
    body["client_url"] = webhook["externalURL"]
    return body


@pytest.mark.parametrize(
    ("webhook_sample", "pagerduty_sample"),
    [
        (FIRING, "alertmanager-pagerduty-sample.json"),
        (RESOLVED, "alertmanager-pagerduty-resolve-sample.json"),
    ],
)
def test_group_mode_reproduces_alertmanagers_own_event(
    webhook_sample: str, pagerduty_sample: str
) -> None:
    webhook = sample(webhook_sample)
    [alert] = parse_alertmanager(webhook)
    event = outbound(alert)
    assert event.body == expected(pagerduty_sample, webhook)
    assert event.notes == ()
    assert event.kind == ("trigger" if webhook["status"] == "firing" else "resolve")


def test_dedup_key_is_sha256_of_group_key_and_labels_route() -> None:
    webhook = sample(FIRING)
    [alert] = parse_alertmanager(webhook)
    assert alert.dedup_key == hashlib.sha256(webhook["groupKey"].encode()).hexdigest()
    assert alert.labels == webhook["commonLabels"]
    assert alert.mirrors_sender
    assert alert.service is None


def test_group_mode_to_a_v1_service_is_alertmanagers_v1_event() -> None:
    webhook = sample(FIRING)
    [alert] = parse_alertmanager(webhook)
    v2 = sample("alertmanager-pagerduty-sample.json")
    assert outbound(alert, api="v1").body == {
        "event_type": "trigger",
        "incident_key": v2["dedup_key"],
        "description": v2["payload"]["summary"],
        "details": v2["payload"]["custom_details"],
        "client": "Alertmanager",
        "client_url": webhook["externalURL"],
    }
    [resolved] = parse_alertmanager(sample(RESOLVED))
    body = outbound(resolved, api="v1").body
    assert body["event_type"] == "resolve"
    assert "client" not in body
    assert body["description"] == "[RESOLVED] DiskFull db (db1:9100 critical)"


def member(status: str, **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": {},
        "startsAt": "2026-11-22T18:43:38.259570865Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16],
    }


def webhook_of(alerts: list[dict[str, Any]], group: dict[str, str], common: dict[str, str]) -> Any:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="X"}',
        "status": status,
        "receiver": "r",
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "alerts": alerts,
    }


def test_mixed_group_counts_and_lists_both_sides() -> None:
    alerts = [
        member("firing", alertname="Up", instance="b", job="node"),
        member("resolved", alertname="Up", instance="a", job="node"),
        member("firing", alertname="Up", instance="c", job="node"),
    ]
    common = {"alertname": "Up", "job": "node"}
    [alert] = parse_alertmanager(webhook_of(alerts, {"alertname": "Up"}, common))
    assert alert.summary == "[FIRING:2] Up (node)"
    assert alert.severity is None
    assert alert.details == {
        "firing": (
            "Labels:\n - alertname = Up\n - instance = b\n - job = node\nAnnotations:\nSource: \n"
            "Labels:\n - alertname = Up\n - instance = c\n - job = node\nAnnotations:\nSource: \n"
        ),
        "resolved": (
            "Labels:\n - alertname = Up\n - instance = a\n - job = node\nAnnotations:\nSource: \n"
        ),
        "num_firing": "2",
        "num_resolved": "1",
    }
    # No severity label: the map's default, which is Alertmanager's own default.
    assert outbound(alert).body["payload"]["severity"] == "error"


def test_subject_keeps_alertmanagers_trailing_space() -> None:
    # Nothing common beyond the group labels: `__subject` ends with the space before "(".
    assert subject("firing", 1, {"alertname": "X"}, {"alertname": "X"}) == "[FIRING:1] X "
    assert subject("resolved", 0, {}, {}) == "[RESOLVED]  "


def test_sorted_pairs_put_alertname_first() -> None:
    pairs = sorted_pairs({"zone": "1", "alertname": "A", "instance": "i", "Zed": "z"})
    assert [k for k, _ in pairs] == ["alertname", "Zed", "instance", "zone"]


def test_alert_mode_makes_one_alert_per_alert_keyed_by_fingerprint() -> None:
    webhook = sample(FIRING)
    extra = copy.deepcopy(webhook["alerts"][0])
    extra.update(status="resolved", fingerprint="0123456789abcdef", endsAt="2026-11-22T19:00:00Z")
    extra["annotations"] = {}
    webhook["alerts"].append(extra)
    first, second = parse_alertmanager(webhook, mode="alert")
    assert outbound(first).body == {
        "event_action": "trigger",
        "dedup_key": "e5cb976153386091",
        "payload": {
            "summary": "Disk almost full on db1",
            "source": "db1:9100",
            "severity": "critical",
            "timestamp": "2026-11-22T18:43:38.259570865Z",
            "custom_details": {
                "annotations": {
                    "description": "Only 1% free on /var/lib/postgresql",
                    "summary": "Disk almost full on db1",
                },
                "labels": {
                    "alertname": "DiskFull",
                    "instance": "db1:9100",
                    "service": "db",
                    "severity": "critical",
                },
            },
        },
        "links": [{"href": "http://127.0.0.1:9090/graph", "text": "Source"}],
        "client": "Alertmanager",
        "client_url": "http://vm:19093",
    }
    assert second.status == "resolved"
    assert second.timestamp == "2026-11-22T19:00:00Z"
    assert second.summary == "DiskFull (instance=db1:9100 service=db severity=critical)"
    assert second.links == (Link(href="http://127.0.0.1:9090/graph", text="Source"),)
    assert outbound(second).body == {"event_action": "resolve", "dedup_key": "0123456789abcdef"}


def test_alert_mode_caps_the_count() -> None:
    alerts = [member("firing", alertname="A", n=str(i)) for i in range(1001)]
    with pytest.raises(InputError) as caught:
        parse_alertmanager(webhook_of(alerts, {}, {}), mode="alert")
    assert caught.value.field == "alerts"
    assert "max_alerts" in caught.value.message


def broken(path: str, value: Any) -> Any:
    return with_value(sample(FIRING), path, value)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("version", "3", "version"),
        ("version", 4, "version"),
        ("version", DELETE, "version"),
        ("alerts", [], "alerts"),
        ("alerts", "x", "alerts"),
        ("alerts", DELETE, "alerts"),
        ("alerts[0]", "x", "alerts[0]"),
        ("alerts[0].status", "pending", "alerts[0].status"),
        ("alerts[0].labels", ["x"], "alerts[0].labels"),
        ("alerts[0].labels.alertname", 1, "alerts[0].labels.alertname"),
        ("alerts[0].annotations.summary", None, "alerts[0].annotations.summary"),
        ("alerts[0].generatorURL", 5, "alerts[0].generatorURL"),
        ("status", "unknown", "status"),
        ("groupKey", DELETE, "groupKey"),
        ("groupKey", 7, "groupKey"),
        ("commonLabels", "x", "commonLabels"),
        ("commonLabels.severity", 2, "commonLabels.severity"),
        ("groupLabels.alertname", "bad\x00", "groupLabels.alertname"),
        ("externalURL", [], "externalURL"),
    ],
)
def test_refusals_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_alertmanager(broken(path, value))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("alerts[0].fingerprint", DELETE, "alerts[0].fingerprint"),
        ("alerts[0].startsAt", "yesterday", "alerts[0].startsAt"),
    ],
)
def test_alert_mode_refusals(path: str, value: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_alertmanager(broken(path, value), mode="alert")
    assert caught.value.field == field


def test_not_an_object() -> None:
    with pytest.raises(InputError) as caught:
        parse_alertmanager([sample(FIRING)])
    assert caught.value.field == ""
