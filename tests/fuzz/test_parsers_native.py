"""Our native alert format (`POST /v1/alerts`): valid bodies round-trip and map; any other
body is refused with an InputError naming the field, never another exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.errors import InputError
from app.ingest.native import FIELDS, parse_native
from tests.fuzz.checks import assert_maps, assert_names_a_field, assert_routes
from tests.fuzz.ingest_bodies import native_alerts, native_bodies
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

TEXT_FIELDS = FIELDS - {"labels", "details", "links", "images"}
LINK_FIELDS = {"links": ("href", "text"), "images": ("src", "href", "alt")}


def _alerts_of(body: Any) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = body.get("alerts", [body])
    return alerts


@examples(80)
@given(native_bodies())
def test_valid_alerts_round_trip_and_map(body: Any) -> None:
    alerts = parse_native(body)
    raws = _alerts_of(body)
    assert len(alerts) == len(raws)
    for alert, raw in zip(alerts, raws, strict=True):
        assert alert.status == raw.get("status", "firing")
        assert alert.dedup_key == raw.get("dedup_key", raw.get("id"))
        assert alert.summary == raw.get("summary")
        for name in ("severity", "source", "component", "group", "timestamp", "service"):
            assert getattr(alert, name) == raw.get(name)
        assert alert.class_ == raw.get("class")
        assert dict(alert.labels) == raw.get("labels", {})
        assert dict(alert.details) == raw.get("details", {})
        assert [link.href for link in alert.links] == [x["href"] for x in raw.get("links", [])]
        assert [image.src for image in alert.images] == [x["src"] for x in raw.get("images", [])]
        assert_maps(alert)
        assert_routes(alert)


native_keys = st.one_of(st.sampled_from(sorted(FIELDS | {"alerts", "href", "src"})), nasty_text)


@examples(150)
@given(st.one_of(json_values(native_keys), native_bodies().flatmap(broken)))
@example(nested(5000))
@example({"summary": "s", "details": {"deep": nested(100)}})
@example({"summary": "s", "details": {"n": float("nan"), "big": 10**400}})
@example({"summary": "\ud800"})
@example({"summary": "s", "labels": {"\x00": "v"}})
@example({"alerts": [{"summary": "s"}] * 1001})
@example({"summary": "s", "images": [{"src": "https://"}, {"src": "HTTPS://  "}]})
@example({"summary": "s", "timestamp": "2026-05-01t12:00:00z"})
def test_any_body_parses_or_is_refused_by_name(body: Any) -> None:
    alerts = outcome(lambda: parse_native(body), InputError)
    if isinstance(alerts, InputError):
        assert_names_a_field(alerts)
        return
    for alert in alerts:
        assert_maps(alert)
        assert_routes(alert)


def _typed(path: Path) -> bool:
    """A path whose value has one JSON type the format fixes (the details hold any JSON)."""
    if path[:1] == ("alerts",):
        if len(path) <= 2:
            return True
        path = path[2:]
    if len(path) == 1:
        return path[0] in FIELDS
    head = path[0]
    if head == "labels":
        return len(path) == 2
    if head in LINK_FIELDS:
        return len(path) == 2 or (len(path) == 3 and path[2] in LINK_FIELDS[head])
    return False


@examples(80)
@given(native_bodies(), st.data())
def test_a_mistyped_field_is_named(body: Any, data: st.DataObject) -> None:
    paths = [p for p in leaf_paths(body) if _typed(p)]
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    wrong = data.draw(other_type(get_at(body, path)))
    with pytest.raises(InputError) as refused:
        parse_native(set_at(body, path, wrong))
    assert refused.value.field == render(path)
    assert_names_a_field(refused.value)


@examples(30)
@given(native_alerts(), st.sampled_from(sorted(TEXT_FIELDS)), st.sampled_from(["\x00", "\udc80"]))
def test_text_postgres_cannot_store_is_refused(alert: dict[str, Any], field: str, bad: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_native({**alert, field: f"a{bad}b"})
    assert refused.value.field == field
