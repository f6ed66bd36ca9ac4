"""Our own format, from body to the exact Events API body."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InputError
from app.ingest.native import BATCH_MAX, parse_native
from app.ingest.severity import SeverityMap
from tests.ingest.helpers import DELETE, NEW_KEY, outbound, with_value

FULL: dict[str, Any] = {
    "dedup_key": "disk/db1",
    "status": "firing",
    "summary": "Disk almost full on db1",
    "severity": "P1",
    "source": "db1.example.com",
    "component": "postgres",
    "group": "storage",
    "class": "disk",
    "labels": {"team": "dba", "env": "prod"},
    "details": {"free_percent": 1.5, "mounts": ["/", "/var"], "ok": False, "extra": None},
    "links": [{"href": "https://grafana.example.com/d/1", "text": "Dashboard"}],
    "images": [{"src": "https://img.example.com/1.png", "href": "https://x.example", "alt": "g"}],
    "timestamp": "2026-05-01T12:00:00.123+02:00",
    "service": "Databases",
}


def test_full_alert_to_v2() -> None:
    [alert] = parse_native(FULL)
    assert alert.service == "Databases"
    event = outbound(alert)
    assert event.kind == "trigger"
    assert event.api == "v2"
    assert event.dedup_key == "disk/db1"
    # The one change on the way: the sender's P1 is PagerDuty's critical (the history shows it).
    assert event.notes == ("severity \u201cP1\u201d sent as critical",)
    assert event.body == {
        "event_action": "trigger",
        "dedup_key": "disk/db1",
        "payload": {
            "summary": "Disk almost full on db1",
            "source": "db1.example.com",
            "severity": "critical",
            "timestamp": "2026-05-01T12:00:00.123+02:00",
            "component": "postgres",
            "group": "storage",
            "class": "disk",
            "custom_details": {
                "free_percent": 1.5,
                "mounts": ["/", "/var"],
                "ok": False,
                "extra": None,
                "labels": {"team": "dba", "env": "prod"},
            },
        },
        "links": [{"href": "https://grafana.example.com/d/1", "text": "Dashboard"}],
        "images": [
            {"src": "https://img.example.com/1.png", "href": "https://x.example", "alt": "g"}
        ],
    }


def test_full_alert_to_v1() -> None:
    [alert] = parse_native(FULL)
    event = outbound(alert, api="v1")
    assert event.api == "v1"
    assert event.body == {
        "event_type": "trigger",
        "incident_key": "disk/db1",
        "description": "Disk almost full on db1",
        "details": {
            "free_percent": 1.5,
            "mounts": ["/", "/var"],
            "ok": False,
            "extra": None,
            "labels": {"team": "dba", "env": "prod"},
        },
        "contexts": [
            {"type": "link", "href": "https://grafana.example.com/d/1", "text": "Dashboard"},
            {
                "type": "image",
                "src": "https://img.example.com/1.png",
                "href": "https://x.example",
                "alt": "g",
            },
        ],
    }


def test_minimal_alert_gets_defaults_and_a_new_key() -> None:
    [alert] = parse_native({"summary": "It broke"})
    event = outbound(alert)
    assert event.dedup_key == NEW_KEY
    assert event.body == {
        "event_action": "trigger",
        "dedup_key": NEW_KEY,
        "payload": {"summary": "It broke", "source": "pdconnect", "severity": "error"},
    }
    assert (
        outbound(alert, severity_map=SeverityMap(default="warning")).body["payload"]["severity"]
        == "warning"
    )


def test_labels_alone_go_under_labels() -> None:
    [alert] = parse_native({"summary": "s", "labels": {"a": "b"}})
    assert outbound(alert).body["payload"]["custom_details"] == {"labels": {"a": "b"}}


@pytest.mark.parametrize(
    ("status", "action"), [("acknowledged", "acknowledge"), ("resolved", "resolve")]
)
def test_updates_carry_only_action_and_key(status: str, action: str) -> None:
    [alert] = parse_native({"id": "k1", "status": status, "labels": {"a": "b"}})
    assert outbound(alert).body == {"event_action": action, "dedup_key": "k1"}
    assert outbound(alert, api="v1").body == {"event_type": action, "incident_key": "k1"}


def test_batch_keeps_order() -> None:
    alerts = parse_native({"alerts": [{"summary": "one"}, {"id": "2", "status": "resolved"}]})
    assert [a.summary for a in alerts] == ["one", None]
    assert [a.status for a in alerts] == ["firing", "resolved"]


def test_batch_is_refused_whole_naming_the_alert() -> None:
    good = {"summary": "fine"}
    with pytest.raises(InputError) as caught:
        parse_native({"alerts": [good, good, good, {"summary": "x", "severity": 3}]})
    assert caught.value.field == "alerts[3].severity"
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"alerts": []}, "alerts"),
        ({"alerts": [{"summary": "s"}] * (BATCH_MAX + 1)}, "alerts"),
        ({"alerts": {"summary": "s"}}, "alerts"),
        ({"alerts": [{"summary": "s"}], "extra": 1}, "extra"),
        ({"alerts": ["s"]}, "alerts[0]"),
        (
            {"alerts": [{"summary": "s"}, {"summary": "s", "labels": {"a": 1}}]},
            "alerts[1].labels.a",
        ),
        ("just text", ""),
        (None, ""),
        ([{"summary": "s"}], ""),
    ],
)
def test_batch_shape_refusals(body: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_native(body)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("summary", DELETE, "summary"),
        ("summary", "   ", "summary"),
        ("summary", 42, "summary"),
        ("summary", "nul\x00inside", "summary"),
        ("summary", "lone \ud800 surrogate", "summary"),
        ("status", "open", "status"),
        ("status", True, "status"),
        ("dedup_key", 12, "dedup_key"),
        ("dedup_key", "k" * 4097, "dedup_key"),
        ("id", "other", "id"),
        ("severity", ["high"], "severity"),
        ("source", {"host": "x"}, "source"),
        ("component", 1.5, "component"),
        ("group", False, "group"),
        ("class", 0, "class"),
        ("labels", ["team"], "labels"),
        ("labels", {str(i): "v" for i in range(101)}, "labels"),
        ("labels.team", 7, "labels.team"),
        ("labels.team", "v" * 1025, "labels.team"),
        ("labels", {"": "v"}, 'labels.""'),
        ("labels", {"n" * 101: "v"}, "labels." + "n" * 99 + "…"),
        ("labels", {"bad\ud800": "v"}, "labels.bad\\ud800"),
        ("details", {"k\x00": 1}, "details.k\\x00"),
        ("details", {"k": {2**80: 1}}, "details.k"),
        ("details", "text", "details"),
        ("details", {"x": float("nan")}, "details.x"),
        ("details", {"x": [1, float("inf")]}, "details.x[1]"),
        ("details", {"x": 10**30}, "details.x"),
        ("details", {"x": {1: "a"}}, "details.x"),
        ("details", {"x": object()}, "details.x"),
        ("details", {"labels": {}}, "details.labels"),
        ("links", {"href": "x"}, "links"),
        ("links", ["https://x"], "links[0]"),
        ("links", [{"text": "no href"}], "links[0].href"),
        ("links", [{"href": "https://x", "text": 5}], "links[0].text"),
        ("images", [{"href": "https://x"}], "images[0].src"),
        ("images", [{"src": "https://x", "alt": []}], "images[0].alt"),
        ("timestamp", "yesterday", "timestamp"),
        ("timestamp", "2026-02-30T00:00:00Z", "timestamp"),
        ("timestamp", "2026-01-01T25:00:00Z", "timestamp"),
        ("timestamp", 1767225600, "timestamp"),
        ("service", "s" * 256, "service"),
        ("severty", "high", "severty"),
    ],
)
def test_every_bad_field_is_refused_by_name(path: str, value: Any, field: str) -> None:
    body = with_value(FULL, path, value)
    with pytest.raises(InputError) as caught:
        parse_native(body)
    assert caught.value.field == field
    with pytest.raises(InputError) as in_batch:
        parse_native({"alerts": [FULL, body]})
    assert in_batch.value.field == f"alerts[1].{field}"


def test_deep_details_are_refused() -> None:
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"d": deep}
    with pytest.raises(InputError) as caught:
        parse_native({"summary": "s", "details": deep})
    assert caught.value.field.startswith("details.d.d")


@pytest.mark.parametrize("status", ["acknowledged", "resolved"])
def test_updates_need_a_key(status: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_native({"status": status, "summary": "s"})
    assert caught.value.field == "dedup_key"


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-05-01T12:00:00Z",
        "2026-05-01T12:00Z",
        "2026-05-01T12:00:00.259570865Z",
        "2015-07-17T08:42:58.315+0000",
        "2026-05-01 12:00:00-05:30",
        "2026-05-01T12:00:00",
    ],
)
def test_timestamps_accepted(stamp: str) -> None:
    [alert] = parse_native({"summary": "s", "timestamp": stamp})
    assert alert.timestamp == stamp


def test_blank_optional_fields_are_absent() -> None:
    [alert] = parse_native({"summary": "s", "source": " ", "component": "", "details": None})
    assert alert.source is None
    assert alert.component is None
    assert alert.details == {}
