"""Alertmanager's webhook (version 4), in group and alert mode, from the captured samples with
their values drawn anew and then broken."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.errors import InputError
from app.ingest.alertmanager import Mode, parse_alertmanager
from tests.fuzz.checks import assert_maps, assert_names_a_field, assert_routes
from tests.fuzz.ingest_bodies import ALERTMANAGER_SAMPLES, alertmanager_webhooks
from tests.fuzz.outcome import outcome
from tests.fuzz.strategies import (
    Path,
    broken,
    examples,
    get_at,
    json_values,
    leaf_paths,
    nasty_text,
    other_type,
    render,
    set_at,
)

MODES: tuple[Mode, ...] = ("group", "alert")
MEMBER_TEXT = ("status", "fingerprint", "generatorURL", "startsAt", "endsAt")
GROUP_TEXT = ("version", "status", "groupKey", "externalURL")
STRING_MAPS = ("groupLabels", "commonLabels")
KEYS = (
    *("version", "status", "alerts", "groupKey", "groupLabels", "commonLabels", "externalURL"),
    *("labels", "annotations", "fingerprint", "startsAt", "endsAt", "generatorURL"),
)


@examples(60)
@given(alertmanager_webhooks())
@example(ALERTMANAGER_SAMPLES[0])
@example(ALERTMANAGER_SAMPLES[1])
def test_valid_webhooks_round_trip_and_map(body: dict[str, Any]) -> None:
    [group] = parse_alertmanager(body, mode="group")
    assert group.dedup_key == hashlib.sha256(body["groupKey"].encode()).hexdigest()
    assert group.status == body["status"]
    assert dict(group.labels) == body["commonLabels"]
    assert group.severity == body["commonLabels"].get("severity")
    assert group.details["num_firing"] == str(
        sum(member["status"] == "firing" for member in body["alerts"])
    )
    one_each = parse_alertmanager(body, mode="alert")
    assert [a.dedup_key for a in one_each] == [m["fingerprint"] for m in body["alerts"]]
    assert [a.status for a in one_each] == [m["status"] for m in body["alerts"]]
    assert [dict(a.labels) for a in one_each] == [m["labels"] for m in body["alerts"]]
    for alert in (group, *one_each):
        assert_maps(alert)
        assert_routes(alert)


@examples(120)
@given(
    st.one_of(
        json_values(st.one_of(st.sampled_from(KEYS), nasty_text)),
        alertmanager_webhooks().flatmap(broken),
        st.sampled_from(ALERTMANAGER_SAMPLES).flatmap(broken),
    ),
    st.sampled_from(MODES),
)
@example(
    {**ALERTMANAGER_SAMPLES[0], "alerts": [ALERTMANAGER_SAMPLES[0]["alerts"][0]] * 1001}, "alert"
)
@example({**ALERTMANAGER_SAMPLES[0], "groupKey": "\ud800"}, "group")
def test_any_body_parses_or_is_refused_by_name(body: Any, mode: Mode) -> None:
    alerts = outcome(lambda: parse_alertmanager(body, mode=mode), InputError)
    if isinstance(alerts, InputError):
        assert_names_a_field(alerts)
        return
    for alert in alerts:
        assert_maps(alert)
        assert_routes(alert)


def _typed(path: Path) -> bool:
    """What group mode reads, with the one type it must have."""
    if len(path) == 1:
        return path[0] in (*GROUP_TEXT, *STRING_MAPS, "alerts")
    if path[0] in STRING_MAPS:
        return len(path) == 2
    if path[0] != "alerts":
        return False
    member = path[2:]
    return len(member) <= 1 or (member[0] in ("labels", "annotations") and len(member) == 2)


@examples(60)
@given(alertmanager_webhooks(), st.data())
def test_a_mistyped_field_is_named(body: dict[str, Any], data: st.DataObject) -> None:
    paths = [p for p in leaf_paths(body) if _typed(p)]
    path = data.draw(st.sampled_from(paths))
    wrong = data.draw(other_type(get_at(body, path)))
    with pytest.raises(InputError) as refused:
        parse_alertmanager(set_at(body, path, wrong), mode="group")
    assert refused.value.field == render(path)
    assert_names_a_field(refused.value)
