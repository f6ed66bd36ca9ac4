"""The Events API drop-ins (v2 alert events, v2 change events, v1): valid events round-trip
and map; anything else is refused in PagerDuty's shape, each error quoting the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.errors import InputError
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.events_v1 import parse_events_v1
from app.ingest.events_v2 import DropInError, parse_change_v2, parse_events_v2
from tests.fuzz.checks import assert_maps, assert_names_a_field, assert_routes
from tests.fuzz.ingest_bodies import EVENTS_V2_SAMPLES, change_events, v1_events, v2_events
from tests.fuzz.outcome import outcome
from tests.fuzz.strategies import (
    Path,
    broken,
    examples,
    get_at,
    json_values,
    leaf_paths,
    nasty_text,
    nested,
    other_type,
    render,
    set_at,
)

Parser = Callable[[object], tuple[str, Alert | ChangeEvent]]
PARSERS: dict[str, Parser] = {
    "v2": parse_events_v2,
    "change": parse_change_v2,
    "v1": parse_events_v1,
}
VALID = {"v2": v2_events(), "change": change_events(), "v1": v1_events()}
KEYS = (
    *("routing_key", "event_action", "dedup_key", "payload", "summary", "source", "severity"),
    *("timestamp", "custom_details", "links", "images", "href", "src", "text", "alt"),
    *("service_key", "event_type", "incident_key", "description", "details", "contexts"),
    *("type", "client", "client_url"),
)
# Per format: top-level fields of one fixed type, and the typed fields of its objects.
TEXT = {
    "v2": ("routing_key", "event_action", "dedup_key", "client", "client_url"),
    "change": ("routing_key",),
    "v1": ("service_key", "event_type", "incident_key", "description", "client", "client_url"),
}
OBJECTS = {
    "payload": ("summary", "source", "severity", "timestamp", "component", "group", "class"),
    "links": ("href", "text"),
    "images": ("src", "href", "alt"),
    "contexts": ("type", "href", "text", "src", "alt"),
}
DEEP = {"summary": "s", "source": "s", "severity": "info", "custom_details": nested(100)}


def _typed(api: str, path: Path) -> bool:
    if len(path) == 1:
        return path[0] in TEXT[api] or path[0] in OBJECTS
    if path[0] not in OBJECTS:
        return False
    fields = OBJECTS[str(path[0])]
    if path[0] == "payload":
        return len(path) == 2 and path[1] in fields
    return len(path) == 2 or (len(path) == 3 and path[2] in fields)


def _assert_round_trip(api: str, body: dict[str, Any], key: str, item: Any) -> None:
    assert key == body["routing_key" if api != "v1" else "service_key"]
    if isinstance(item, ChangeEvent):
        assert item.summary == body["payload"]["summary"]
        assert item.source == body["payload"].get("source")
        return
    action = body["event_action" if api == "v2" else "event_type"]
    assert item.status == {"trigger": "firing", "acknowledge": "acknowledged"}.get(
        action, "resolved"
    )
    assert item.dedup_key == body.get("dedup_key" if api == "v2" else "incident_key")
    if api == "v2" and action == "trigger":
        payload = body["payload"]
        assert (item.summary, item.source) == (payload["summary"], payload["source"])
        assert item.severity == payload["severity"]
        assert dict(item.details) == payload.get("custom_details", {})
    if api == "v1" and action == "trigger":
        assert item.summary == body["description"]
        assert dict(item.details) == body.get("details", {})


@examples(60)
@given(st.sampled_from(sorted(PARSERS)).flatmap(lambda api: st.tuples(st.just(api), VALID[api])))
@example(("v2", EVENTS_V2_SAMPLES[0]))
@example(("v2", EVENTS_V2_SAMPLES[1]))
def test_valid_events_round_trip_and_map(case: tuple[str, dict[str, Any]]) -> None:
    api, body = case
    key, item = PARSERS[api](body)
    _assert_round_trip(api, body, key, item)
    assert_maps(item)
    assert_routes(item)


def _any_body(api: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        json_values(st.one_of(st.sampled_from(KEYS), nasty_text)),
        VALID[api].flatmap(broken),
    )


@examples(150)
@given(st.sampled_from(sorted(PARSERS)).flatmap(lambda a: st.tuples(st.just(a), _any_body(a))))
@example(("v2", {"routing_key": "k", "event_action": "trigger", "payload": DEEP}))
@example(("v1", {"service_key": "k", "event_type": "trigger", "description": "d", "details": DEEP}))
@example(("change", {"routing_key": "k", "payload": {"summary": "s", "timestamp": 10**400}}))
@example(("v2", {"routing_key": "k", "event_action": "trigger", "payload": {"summary": "\udc00"}}))
@example(("v2", nested(5000)))
def test_any_body_parses_or_is_refused_in_pagerduty_shape(case: tuple[str, Any]) -> None:
    api, body = case
    parsed = outcome(lambda: PARSERS[api](body), InputError)
    if isinstance(parsed, InputError):
        assert isinstance(parsed, DropInError)
        assert parsed.status == 400
        assert parsed.errors
        assert_names_a_field(parsed)
        return
    key, item = parsed
    assert key.strip()
    assert_maps(item)
    assert_routes(item)


@examples(90)
@given(
    st.sampled_from(sorted(PARSERS)).flatmap(lambda api: st.tuples(st.just(api), VALID[api])),
    st.data(),
)
def test_a_mistyped_field_is_quoted(case: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    api, body = case
    paths = [p for p in leaf_paths(body) if _typed(api, p)]
    path = data.draw(st.sampled_from(paths))
    wrong = data.draw(other_type(get_at(body, path)))
    with pytest.raises(DropInError) as refused:
        PARSERS[api](set_at(body, path, wrong))
    assert any(f"'{render(path)}'" in error for error in refused.value.errors)
