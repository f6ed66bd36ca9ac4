"""PagerDuty's Events API v1, drop-in."""

from __future__ import annotations

from typing import Any

import pytest

from app.ingest.events_v1 import parse_events_v1
from app.ingest.events_v2 import DropInError
from tests.ingest.helpers import DELETE, NEW_KEY, outbound, with_value

INGEST_KEY = "pdc_0123456789abcdef"

TRIGGER: dict[str, Any] = {
    "service_key": INGEST_KEY,
    "event_type": "trigger",
    "incident_key": "srv01/HTTP",
    "description": "FAILURE for production/HTTP on machine srv01.acme.com",
    "client": "Sample Monitoring Service",
    "client_url": "https://monitoring.service.com",
    "details": {"ping time": "1500ms", "load avg": 0.75},
    "contexts": [
        {"type": "link", "href": "http://acme.pagerduty.com", "text": "View the incident"},
        {
            "type": "image",
            "src": "https://chart.googleapis.com/chart?chs=600x400",
            "href": "https://g",
        },
    ],
}


def test_trigger_to_a_v1_service_passes_through_unchanged() -> None:
    key, alert = parse_events_v1(TRIGGER)
    assert key == INGEST_KEY
    assert outbound(alert, api="v1").body == {
        k: v for k, v in TRIGGER.items() if k != "service_key"
    }


def test_trigger_to_a_v2_service() -> None:
    _, alert = parse_events_v1(TRIGGER)
    assert outbound(alert).body == {
        "event_action": "trigger",
        "dedup_key": "srv01/HTTP",
        "payload": {
            "summary": "FAILURE for production/HTTP on machine srv01.acme.com",
            "source": "pdconnect",
            "severity": "error",
            "custom_details": {"ping time": "1500ms", "load avg": 0.75},
        },
        "links": [{"href": "http://acme.pagerduty.com", "text": "View the incident"}],
        "images": [{"src": "https://chart.googleapis.com/chart?chs=600x400", "href": "https://g"}],
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.service.com",
    }


def test_string_details_and_no_incident_key() -> None:
    _, alert = parse_events_v1(
        {"service_key": "k", "event_type": "trigger", "description": "d", "details": "free text"}
    )
    assert outbound(alert, api="v1").body == {
        "event_type": "trigger",
        "incident_key": NEW_KEY,
        "description": "d",
        "details": {"details": "free text"},
    }


@pytest.mark.parametrize("event_type", ["acknowledge", "resolve"])
def test_updates(event_type: str) -> None:
    body = {
        "service_key": INGEST_KEY,
        "event_type": event_type,
        "incident_key": "srv01/HTTP",
        "description": "ignored",
        "details": float("nan"),
    }
    _, alert = parse_events_v1(body)
    assert outbound(alert, api="v1").body == {
        "event_type": event_type,
        "incident_key": "srv01/HTTP",
    }


@pytest.mark.parametrize(
    ("path", "value", "errors"),
    [
        ("service_key", DELETE, ["'service_key' is missing or blank"]),
        ("service_key", None, ["'service_key' is missing or blank"]),
        ("event_type", DELETE, ["'event_type' is missing or blank"]),
        (
            "event_type",
            "Trigger",
            [
                "'event_type' is invalid (must be one of the following: "
                "'trigger', 'acknowledge' or 'resolve')"
            ],
        ),
        ("description", DELETE, ["'description' is missing or blank"]),
        ("description", 5, ["'description' is invalid (must be a string)"]),
        ("incident_key", ["x"], ["'incident_key' is invalid (must be a string)"]),
        ("details", {"a": {1: 2}}, ["'details.a' keys must be strings"]),
        ("contexts", {}, ["'contexts' is invalid (must be a list)"]),
        (
            "contexts",
            [{"type": "video"}],
            ["'contexts[0].type' is invalid (must be one of the following: 'link' or 'image')"],
        ),
        ("contexts", [{"href": "x"}], ["'contexts[0].type' is missing or blank"]),
        ("contexts", [{"type": "link"}], ["'contexts[0].href' is missing or blank"]),
        ("contexts", [{"type": "image", "href": "x"}], ["'contexts[0].src' is missing or blank"]),
        ("client", 1, ["'client' is invalid (must be a string)"]),
    ],
)
def test_refusals_in_pagerdutys_words(path: str, value: Any, errors: list[str]) -> None:
    with pytest.raises(DropInError) as caught:
        parse_events_v1(with_value(TRIGGER, path, value))
    assert caught.value.errors == errors
    assert caught.value.status == 400


def test_update_needs_an_incident_key() -> None:
    with pytest.raises(DropInError) as caught:
        parse_events_v1({"service_key": "k", "event_type": "resolve"})
    assert caught.value.errors == ["'incident_key' is missing or blank"]


def test_not_an_object() -> None:
    with pytest.raises(DropInError):
        parse_events_v1("trigger")
