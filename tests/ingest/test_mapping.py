"""PagerDuty's limits, exactly at their boundaries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest

from app.errors import InputError
from app.ingest.alert import Alert, ChangeEvent, Image, Link
from app.ingest.mapping import (
    DEDUP_KEY_MAX_LENGTH,
    DETAILS_REMOVED,
    EVENT_MAX_BYTES,
    SUMMARY_MAX_LENGTH,
    change_to_outbound,
    event_size,
    truncate,
)
from tests.ingest.helpers import outbound

ALERT = Alert(
    status="firing",
    dedup_key="k",
    summary="s",
    severity="warning",
    source="host",
    component=None,
    group=None,
    class_=None,
    labels={},
    details={},
    links=(),
    images=(),
    timestamp=None,
    service=None,
)


def test_alertmanagers_note_text() -> None:
    # notify/pagerduty/pagerduty.go: units.MetricBytes(512000).String() is "512KB".
    assert DETAILS_REMOVED == (
        "Custom details have been removed because the original event exceeds the maximum size "
        "of 512KB"
    )


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_summary_of_1024_is_kept(api: str) -> None:
    summary = "a" * SUMMARY_MAX_LENGTH
    event = outbound(replace(ALERT, summary=summary), api=api)
    sent = event.body["payload"]["summary"] if api == "v2" else event.body["description"]
    assert sent == summary
    assert event.notes == ()


@pytest.mark.parametrize(("api", "note"), [("v2", "summary"), ("v1", "description")])
def test_summary_of_1025_is_cut_to_1023_and_an_ellipsis(api: str, note: str) -> None:
    summary = "é" * 1020 + "abcde"
    event = outbound(replace(ALERT, summary=summary), api=api)
    sent = event.body["payload"]["summary"] if api == "v2" else event.body["description"]
    assert sent == "é" * 1020 + "abc…"
    assert len(sent) == SUMMARY_MAX_LENGTH
    assert event.notes == (f"{note} truncated",)


def test_truncate_counts_characters_like_alertmanager() -> None:
    assert truncate("😀" * 5, 4) == ("😀😀😀…", True)
    assert truncate("abcd", 3) == ("abc", True)
    assert truncate("abc", 3) == ("abc", False)


@pytest.mark.parametrize(("api", "name"), [("v2", "dedup_key"), ("v1", "incident_key")])
def test_dedup_key_of_255_is_kept(api: str, name: str) -> None:
    key = "k" * DEDUP_KEY_MAX_LENGTH
    event = outbound(replace(ALERT, dedup_key=key), api=api)
    assert event.dedup_key == key
    assert event.body[name] == key
    assert event.notes == ()


@pytest.mark.parametrize(("api", "name"), [("v2", "dedup_key"), ("v1", "incident_key")])
@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_dedup_key_of_256_is_hashed_the_same_every_time(api: str, name: str, status: str) -> None:
    key = "k" * (DEDUP_KEY_MAX_LENGTH + 1)
    event = outbound(replace(ALERT, dedup_key=key, status=status), api=api)  # type: ignore[arg-type]
    hashed = hashlib.sha256(key.encode()).hexdigest()
    assert event.dedup_key == hashed
    assert event.body[name] == hashed
    assert event.notes == (f"{name} hashed",)


def test_non_https_images_are_dropped() -> None:
    images = (
        Image(src="http://plain.example/a.png"),
        Image(src="HTTPS://upper.example/b.png", alt="b"),
        Image(src="ftp://x/c.png"),
        Image(src="data:image/png;base64,AAAA"),
    )
    event = outbound(replace(ALERT, images=images))
    assert event.body["images"] == [{"src": "HTTPS://upper.example/b.png", "alt": "b"}]
    assert event.notes == ("image dropped: not https",)
    only_bad = outbound(replace(ALERT, images=images[:1]))
    assert "images" not in only_bad.body


def test_links_keep_any_scheme_and_omit_empty_text() -> None:
    links = (Link(href="http://runbook"), Link(href="https://x", text="X"))
    assert outbound(replace(ALERT, links=links)).body["links"] == [
        {"href": "http://runbook"},
        {"href": "https://x", "text": "X"},
    ]


def test_details_win_over_labels_when_built_elsewhere() -> None:
    alert = replace(ALERT, labels={"a": "b"}, details={"labels": "theirs"})
    event = outbound(alert)
    assert event.body["payload"]["custom_details"] == {"labels": "theirs"}
    assert event.notes == ("labels not added: details already have labels",)


def huge_details(size: int) -> dict[str, Any]:
    return {"blob": "x" * size, "labels_like": {"a": "b"}}


@pytest.mark.parametrize(("api", "name"), [("v2", "custom_details"), ("v1", "details")])
def test_event_over_512000_bytes_loses_its_details_as_in_alertmanager(api: str, name: str) -> None:
    alert = replace(ALERT, details=huge_details(EVENT_MAX_BYTES), links=(Link(href="https://x"),))
    event = outbound(alert, api=api)
    details = event.body["payload"][name] if api == "v2" else event.body[name]
    assert details == {"error": DETAILS_REMOVED}
    assert event.notes == (f"{name} dropped: event over 512000 bytes",)
    assert event_size(event.body) <= EVENT_MAX_BYTES


def test_the_size_guard_boundary_is_exact() -> None:
    base = replace(ALERT, details={"blob": ""})
    room = EVENT_MAX_BYTES - event_size(outbound(base).body)
    fits = outbound(replace(ALERT, details={"blob": "x" * room}))
    assert event_size(fits.body) == EVENT_MAX_BYTES
    assert fits.body["payload"]["custom_details"] == {"blob": "x" * room}
    over = outbound(replace(ALERT, details={"blob": "x" * (room + 1)}))
    assert over.body["payload"]["custom_details"] == {"error": DETAILS_REMOVED}


def test_size_counts_the_routing_key_the_dispatcher_adds() -> None:
    body = outbound(ALERT).body
    with_key = json.dumps({**body, "routing_key": "R" * 32})
    assert event_size(body) == len(with_key)


def test_size_counts_non_ascii_as_escaped() -> None:
    # 3 bytes in UTF-8, 6 as \\u2603: the larger is what we count.
    small = outbound(replace(ALERT, details={"t": "x" * 1000}))
    snow = outbound(replace(ALERT, details={"t": "☃" * 1000}))
    assert event_size(snow.body) - event_size(small.body) == 5000


def test_huge_links_and_images_go_after_the_details() -> None:
    links = tuple(Link(href=f"https://x/{i}", text="t" * 1000) for i in range(600))
    event = outbound(replace(ALERT, details={"a": 1}, links=links))
    assert "links" not in event.body
    assert event.body["payload"]["custom_details"] == {"error": DETAILS_REMOVED}
    assert event.notes == (
        "custom_details dropped: event over 512000 bytes",
        "links dropped: event over 512000 bytes",
    )
    assert event_size(event.body) <= EVENT_MAX_BYTES


def test_worst_case_still_fits() -> None:
    # Every bounded text at its limit in characters that escape to 12 bytes each.
    wide = "😀" * 5000
    alert = replace(
        ALERT,
        dedup_key=wide,
        summary=wide,
        source=wide,
        component=wide,
        group=wide,
        class_=wide,
        client=wide,
        client_url="https://x/" + "😀" * 2000,
        details={"d": wide * 100},
        links=tuple(Link(href=wide) for _ in range(20)),
        images=tuple(Image(src="https://" + wide) for _ in range(20)),
        timestamp="2026-05-01T12:00:00Z",
    )
    for api in ("v2", "v1"):
        event = outbound(alert, api=api)
        assert event_size(event.body) <= EVENT_MAX_BYTES


def test_required_fields_only_when_even_that_is_too_big() -> None:
    # Not reachable through the parsers (they bound timestamps); the guard holds anyway.
    alert = replace(ALERT, timestamp="9" * EVENT_MAX_BYTES)
    event = outbound(alert)
    assert event.body == {
        "event_action": "trigger",
        "dedup_key": "k",
        "payload": {"summary": "s", "source": "host", "severity": "warning"},
    }
    assert event.notes[-1] == "event reduced to its required fields: over 512000 bytes"


def test_long_texts_are_cut_and_long_client_url_dropped() -> None:
    alert = replace(
        ALERT,
        source="s" * 1025,
        component="c" * 1025,
        client="C",
        client_url="https://" + "u" * 2100,
    )
    event = outbound(alert)
    assert event.body["payload"]["source"] == "s" * 1023 + "…"
    assert event.body["payload"]["component"] == "c" * 1023 + "…"
    assert event.body["client"] == "C"
    assert "client_url" not in event.body
    assert event.notes == (
        "source truncated",
        "component truncated",
        "client_url dropped: over 2048 characters",
    )


def test_mapping_is_deterministic() -> None:
    alert = replace(ALERT, labels={"z": "1", "a": "2"}, details={"b": [1, {"c": 2}]})
    first, second = outbound(alert), outbound(alert)
    assert json.dumps(first.body) == json.dumps(second.body)
    assert first == second


def test_body_is_a_copy() -> None:
    details: dict[str, Any] = {"nested": {"x": 1}}
    event = outbound(replace(ALERT, details=details))
    details["nested"]["x"] = 2
    assert event.body["payload"]["custom_details"] == {"nested": {"x": 1}}


def test_trigger_without_summary_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        outbound(replace(ALERT, summary=None))
    assert caught.value.field == "summary"


@pytest.mark.parametrize("status", ["acknowledged", "resolved"])
def test_update_without_key_is_refused(status: str) -> None:
    with pytest.raises(InputError) as caught:
        outbound(replace(ALERT, dedup_key=None, status=status))  # type: ignore[arg-type]
    assert caught.value.field == "dedup_key"


def test_non_json_details_are_refused() -> None:
    with pytest.raises(InputError) as caught:
        outbound(replace(ALERT, details={"x": float("nan")}))
    assert caught.value.field == "details"


CHANGE = ChangeEvent(
    summary="Deployed v2.3",
    source="ci",
    timestamp="2026-05-01T12:00:00Z",
    details={"sha": "abc"},
    links=(Link(href="https://ci/1", text="Build"),),
    service=None,
)


def test_change_event_body() -> None:
    event = change_to_outbound(CHANGE)
    assert event.kind == "change"
    assert event.api == "v2"
    assert event.dedup_key is None
    assert event.body == {
        "payload": {
            "summary": "Deployed v2.3",
            "source": "ci",
            "timestamp": "2026-05-01T12:00:00Z",
            "custom_details": {"sha": "abc"},
        },
        "links": [{"href": "https://ci/1", "text": "Build"}],
    }


def test_change_event_limits() -> None:
    event = change_to_outbound(
        replace(CHANGE, summary="x" * 1025, source=None, details={"b": "x" * EVENT_MAX_BYTES})
    )
    assert event.body["payload"]["summary"] == "x" * 1023 + "…"
    assert event.body["payload"]["custom_details"] == {"error": DETAILS_REMOVED}
    assert "source" not in event.body["payload"]
    assert event.notes == (
        "summary truncated",
        "custom_details dropped: event over 512000 bytes",
    )
