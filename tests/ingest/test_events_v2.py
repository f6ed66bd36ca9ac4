"""PagerDuty's Events API v2, drop-in: what a sender sends is what PagerDuty gets (minus the
routing key, which becomes the service's own), and refusals speak PagerDuty's language."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InputError
from app.ingest.events_v2 import DropInError, parse_change_v2, parse_events_v2
from app.ingest.mapping import change_to_outbound
from tests.ingest.helpers import DELETE, NEW_KEY, outbound, with_value

INGEST_KEY = "pdc_0123456789abcdef"

TRIGGER: dict[str, Any] = {
    "routing_key": INGEST_KEY,
    "event_action": "trigger",
    "dedup_key": "srv01/HTTP",
    "payload": {
        "summary": "DISK at 99% on machine prod-datapipe03.example.com",
        "timestamp": "2015-07-17T08:42:58.315+0000",
        "severity": "critical",
        "source": "prod-datapipe03.example.com",
        "component": "mysql",
        "group": "prod-datapipe",
        "class": "disk",
        "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75},
    },
    "images": [
        {
            "src": "https://chart.googleapis.com/chart?chs=600x400",
            "href": "https://g.example",
            "alt": "x",
        }
    ],
    "links": [{"href": "https://example.com/", "text": "Link text"}],
    "client": "Sample Monitoring Service",
    "client_url": "https://monitoring.service.com",
}


def test_trigger_passes_through_unchanged() -> None:
    key, alert = parse_events_v2(TRIGGER)
    assert key == INGEST_KEY
    assert alert.status == "firing"
    expected = {k: v for k, v in TRIGGER.items() if k != "routing_key"}
    assert outbound(alert).body == expected
    assert outbound(alert).notes == ()


def test_minimal_trigger_without_key_gets_one() -> None:
    _, alert = parse_events_v2(
        {
            "routing_key": INGEST_KEY,
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "h", "severity": "info"},
        }
    )
    assert outbound(alert).body == {
        "event_action": "trigger",
        "dedup_key": NEW_KEY,
        "payload": {"summary": "s", "source": "h", "severity": "info"},
    }


def test_any_severity_word_is_mapped() -> None:
    body = with_value(TRIGGER, "payload.severity", "SEV-2")
    _, alert = parse_events_v2(body)
    assert alert.severity == "SEV-2"
    assert outbound(alert).body["payload"]["severity"] == "error"


def test_plain_string_details_are_kept() -> None:
    _, alert = parse_events_v2(with_value(TRIGGER, "payload.custom_details", "free text"))
    assert outbound(alert).body["payload"]["custom_details"] == {"details": "free text"}


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_updates_read_only_the_key(action: str) -> None:
    body = {
        "routing_key": INGEST_KEY,
        "event_action": action,
        "dedup_key": "srv01/HTTP",
        "payload": "ignored by PagerDuty, so by us",
    }
    _, alert = parse_events_v2(body)
    assert outbound(alert).body == {"event_action": action, "dedup_key": "srv01/HTTP"}


def refused(body: Any, parse: Any = parse_events_v2) -> list[str]:
    with pytest.raises(DropInError) as caught:
        parse(body)
    assert isinstance(caught.value, InputError)
    assert caught.value.status == 400
    assert caught.value.field == ""
    return caught.value.errors


@pytest.mark.parametrize(
    ("path", "value", "errors"),
    [
        ("routing_key", DELETE, ["'routing_key' is missing or blank"]),
        ("routing_key", "", ["'routing_key' is missing or blank"]),
        ("routing_key", 12, ["'routing_key' is invalid (must be a string)"]),
        ("event_action", DELETE, ["'event_action' is missing or blank"]),
        (
            "event_action",
            "open",
            [
                "'event_action' is invalid (must be one of the following: "
                "'trigger', 'acknowledge' or 'resolve')"
            ],
        ),
        ("payload", DELETE, ["'payload' is missing or blank"]),
        ("payload", [], ["'payload' is invalid (must be an object)"]),
        (
            "payload",
            {},
            [
                "'payload.summary' is missing or blank",
                "'payload.source' is missing or blank",
                "'payload.severity' is missing or blank",
            ],
        ),
        ("payload.summary", DELETE, ["'payload.summary' is missing or blank"]),
        ("payload.summary", " ", ["'payload.summary' is missing or blank"]),
        ("payload.source", DELETE, ["'payload.source' is missing or blank"]),
        ("payload.severity", DELETE, ["'payload.severity' is missing or blank"]),
        ("payload.severity", 1, ["'payload.severity' is invalid (must be a string)"]),
        ("payload.component", ["x"], ["'payload.component' is invalid (must be a string)"]),
        (
            "payload.timestamp",
            "17/07/2015",
            ["'payload.timestamp' is invalid (must be an ISO 8601 date and time)"],
        ),
        (
            "payload.custom_details",
            {"x": float("nan")},
            ["'payload.custom_details.x' must be a finite number"],
        ),
        ("dedup_key", 5, ["'dedup_key' is invalid (must be a string)"]),
        ("dedup_key", "k" * 4097, ["'dedup_key' is invalid (must be at most 4096 characters)"]),
        ("links", "https://x", ["'links' is invalid (must be a list)"]),
        ("links", ["https://x"], ["'links[0]' is invalid (must be an object)"]),
        ("links", [{"text": "t"}], ["'links[0].href' is missing or blank"]),
        ("images", [{"alt": "a"}], ["'images[0].src' is missing or blank"]),
        (
            "images",
            [{"src": "https://x", "href": 1}],
            ["'images[0].href' is invalid (must be a string)"],
        ),
        ("client", {}, ["'client' is invalid (must be a string)"]),
        ("client_url", "x\x00", ["'client_url' is invalid (contains a NUL character)"]),
    ],
)
def test_refusals_in_pagerdutys_words(path: str, value: Any, errors: list[str]) -> None:
    assert refused(with_value(TRIGGER, path, value)) == errors


def test_every_problem_is_reported() -> None:
    assert refused({"payload": {"summary": "s"}}) == [
        "'routing_key' is missing or blank",
        "'event_action' is missing or blank",
    ]
    assert refused({"routing_key": "k", "event_action": "resolve"}) == [
        "'dedup_key' is missing or blank"
    ]


@pytest.mark.parametrize("body", [None, "x", [TRIGGER], 3])
def test_not_an_object(body: Any) -> None:
    assert refused(body) == ["Event object is invalid: the body must be a JSON object"]


CHANGE: dict[str, Any] = {
    "routing_key": INGEST_KEY,
    "payload": {
        "summary": "Build Success: Increase snapshot create timeout to 30 seconds",
        "timestamp": "2020-07-17T08:42:58.315+0000",
        "source": "prod-build-agent-i-0b148d1040d565540",
        "custom_details": {"build_state": "passed", "build_number": "2", "run_time": "1236s"},
    },
    "links": [{"href": "https://acme.pagerduty.dev/build/2", "text": "View more details in Acme!"}],
}


def test_change_event_passes_through_unchanged() -> None:
    key, event = parse_change_v2(CHANGE)
    assert key == INGEST_KEY
    assert change_to_outbound(event).body == {k: v for k, v in CHANGE.items() if k != "routing_key"}


@pytest.mark.parametrize(
    ("path", "value", "errors"),
    [
        ("routing_key", DELETE, ["'routing_key' is missing or blank"]),
        ("payload", DELETE, ["'payload' is missing or blank"]),
        ("payload.summary", "", ["'payload.summary' is missing or blank"]),
        ("payload.source", 3, ["'payload.source' is invalid (must be a string)"]),
        (
            "payload.timestamp",
            "now",
            ["'payload.timestamp' is invalid (must be an ISO 8601 date and time)"],
        ),
        ("links", [{}], ["'links[0].href' is missing or blank"]),
    ],
)
def test_change_refusals(path: str, value: Any, errors: list[str]) -> None:
    assert refused(with_value(CHANGE, path, value), parse_change_v2) == errors
