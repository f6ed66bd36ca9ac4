"""The readers every ingest parser shares (app/ingest/_values.py), and the tenant's severity
table (app/ingest/severity.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.errors import KEY_NAME_MAX_LENGTH, InputError, key_name
from app.ingest._values import _ISO_8601, JSON_MAX_DEPTH, is_iso_8601, json_copy, string_map
from app.ingest.alert import Alert
from app.ingest.severity import (
    PD_SEVERITIES,
    SEVERITY_NAME_MAX_LENGTH,
    SeverityMap,
    normalize,
    parse_severity_map,
    severity_map_to_json,
)
from pdsandbox.events.rules import is_iso_timestamp
from tests.fuzz.checks import assert_maps, assert_names_a_field
from tests.fuzz.outcome import outcome, storable
from tests.fuzz.strategies import (
    aware_datetimes,
    examples,
    iso_times,
    json_values,
    nasty_text,
    nested,
    other_type,
    strict_json,
    words,
)


@examples(120)
@given(json_values())
@example(nested(JSON_MAX_DEPTH + 1))
@example({"\ud800": 1})
@example([float("inf"), 2**64])
def test_json_copy_is_exact_or_names_the_value(value: Any) -> None:
    copied = outcome(lambda: json_copy(value, "details"), InputError)
    if isinstance(copied, InputError):
        assert copied.field.startswith("details")
        assert_names_a_field(copied)
        return
    text = json.dumps(copied, allow_nan=False, ensure_ascii=False)
    assert storable(text)
    assert json.loads(text) == copied


@examples(60)
@given(strict_json)
def test_json_copy_keeps_strict_json_as_it_is(value: Any) -> None:
    assert json_copy(value, "details") == value


@examples(120)
@given(st.one_of(st.from_regex(_ISO_8601, fullmatch=True), nasty_text, iso_times()))
@example("2026-05-01t12:00:00z")
@example("2026-02-29T00:00:00Z")
@example("2026-01-01T00:00:00+24:00")
def test_accepted_timestamps_reach_pagerduty_as_iso_8601(text: str) -> None:
    if not is_iso_8601(text):
        return
    alert = Alert(status="firing", dedup_key="k", summary="s", timestamp=text)
    v2, _ = assert_maps(alert)
    assert is_iso_timestamp(v2.body["payload"]["timestamp"])


@examples(30)
@given(iso_times())
def test_every_spelling_senders_use_is_accepted(text: str) -> None:
    assert is_iso_8601(text)


@examples(30)
@given(aware_datetimes)
def test_pythons_own_isoformat_is_accepted(when: Any) -> None:
    assert is_iso_8601(when.isoformat())
    assert is_iso_8601(when.isoformat().replace("+00:00", "Z"))


@examples(80)
@given(st.one_of(nasty_text, st.integers(), st.none(), st.tuples(st.integers())))
@example("k" * 10_000)
def test_a_key_is_quoted_bounded_and_printable(key: object) -> None:
    name = key_name(key)
    assert len(name) <= KEY_NAME_MAX_LENGTH
    assert storable(name)


@examples(80)
@given(st.dictionaries(nasty_text, st.one_of(nasty_text, st.integers(), st.none()), max_size=4))
def test_a_string_map_is_copied_or_the_entry_named(value: dict[str, Any]) -> None:
    copied = outcome(lambda: string_map(value, "labels"), InputError)
    if isinstance(copied, InputError):
        assert copied.field.startswith("labels")
        assert_names_a_field(copied)
        return
    assert copied == value
    assert all(storable(k) and storable(v) for k, v in copied.items())


# --- Severity ------------------------------------------------------------------------------

severity_words = st.sampled_from([*PD_SEVERITIES, " Critical ", "WARNING"])


@st.composite
def severity_tables(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(
            words(SEVERITY_NAME_MAX_LENGTH).filter(lambda s: normalize(s) != ""),
            max_size=5,
            unique_by=normalize,
        )
    )
    table: dict[str, Any] = {"overrides": {name: draw(severity_words) for name in names}}
    if draw(st.booleans()):
        table["default"] = draw(severity_words)
    return table


@examples(60)
@given(severity_tables(), st.one_of(st.none(), nasty_text))
def test_a_severity_table_round_trips_and_maps_into_pagerdutys_four(
    table: dict[str, Any], word: str | None
) -> None:
    severities = parse_severity_map(table)
    assert parse_severity_map(severity_map_to_json(severities)) == severities
    assert severities.map(word) in PD_SEVERITIES
    for name, target in table["overrides"].items():
        assert severities.map(name) == target.strip().lower()
    assert severities.default == table.get("default", "error").strip().lower()


@examples(80)
@given(st.one_of(json_values(st.sampled_from(["default", "overrides"])), nasty_text))
@example({"overrides": {str(i): "info" for i in range(201)}})
@example({"overrides": {"Sev 1": "critical", "sev-1": "info"}})
def test_any_severity_table_parses_or_names_the_entry(value: Any) -> None:
    severities = outcome(lambda: parse_severity_map(value), InputError)
    if isinstance(severities, InputError):
        assert_names_a_field(severities)
        return
    assert severities.default in PD_SEVERITIES


@examples(40)
@given(severity_tables(), st.data())
def test_a_mistyped_severity_entry_is_named(table: dict[str, Any], data: st.DataObject) -> None:
    fields = ["overrides", *(f"overrides.{name}" for name in table["overrides"])]
    field = data.draw(st.sampled_from([*fields, "default"]))
    broken: dict[str, Any] = {**table, "overrides": dict(table["overrides"])}
    if field.startswith("overrides."):
        broken["overrides"][field.removeprefix("overrides.")] = data.draw(other_type(""))
    else:
        broken[field] = data.draw(other_type(table.get(field, "")))
    with pytest.raises(InputError) as refused:
        parse_severity_map(broken)
    assert refused.value.field == field


def test_pagerdutys_own_severities_map_to_themselves_whatever_the_default() -> None:
    for default in PD_SEVERITIES:
        assert [SeverityMap(default=default).map(s) for s in PD_SEVERITIES] == list(PD_SEVERITIES)
