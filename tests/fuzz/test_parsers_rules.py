"""Routing rules from the admin API and the settings form (app/ingest/routing.py,
app/ingest/rulebook.py): valid rules round-trip, anything else is refused by name, and an
accepted rule never fails an alert it is matched against."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.errors import InputError
from app.ingest._regex import Regex, compiled
from app.ingest.alert import Alert
from app.ingest.routing import (
    FIELDS,
    REGEX_MAX_LENGTH,
    RULE_NAME_MAX_LENGTH,
    Rule,
    holds,
    parse_rule,
    resolve_targets,
)
from app.ingest.rulebook import parse_severity_lines
from app.ingest.severity import PD_SEVERITIES, parse_severity_map
from tests.fuzz.checks import TARGETS, assert_names_a_field
from tests.fuzz.outcome import outcome
from tests.fuzz.strategies import (
    broken,
    clean_text,
    examples,
    get_at,
    json_values,
    leaf_paths,
    nasty_text,
    other_type,
    render,
    set_at,
    words,
)

# Regex syntax, dense in the characters that make nesting and backtracking.
regexes = st.text(st.sampled_from("()[]{}*+?|\\^$.,:ab0123-"), min_size=1, max_size=30)
fields = st.one_of(st.sampled_from(FIELDS), words(20).map(lambda s: "labels." + s))


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(("equals", "regex", "exists")))
    condition: dict[str, Any] = {"field": draw(fields), "op": op}
    if op == "equals":
        condition["value"] = draw(clean_text(0, 30))
    elif op == "regex":
        condition["value"] = draw(st.sampled_from(("^d", "db[0-9]+", "(?i)critical", "a|b")))
    return condition


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(words(RULE_NAME_MAX_LENGTH)),
        "conditions": draw(st.lists(conditions(), max_size=3)),
        "service_ids": [str(t.id) for t in draw(st.permutations(TARGETS))][
            : draw(st.integers(1, len(TARGETS)))
        ],
    }


alerts = st.builds(
    Alert,
    status=st.sampled_from(("firing", "acknowledged", "resolved")),
    dedup_key=st.one_of(st.none(), words(20)),
    summary=st.one_of(st.none(), words(20)),
    severity=st.one_of(st.none(), st.sampled_from(PD_SEVERITIES), words(20)),
    labels=st.dictionaries(words(10), clean_text(0, 20), max_size=3),
)


@examples(60)
@given(rules(), alerts)
def test_valid_rules_round_trip_and_route(body: dict[str, Any], alert: Alert) -> None:
    name, parsed, service_ids = parse_rule(body)
    assert name == body["name"].strip()
    assert [(c.field, c.op, c.value) for c in parsed] == [
        (c["field"], c["op"], c.get("value")) for c in body["conditions"]
    ]
    assert [str(s) for s in service_ids] == body["service_ids"]
    rule = Rule(id=UUID(int=7), name=name, conditions=parsed, service_ids=service_ids)
    matched = all(holds(condition, alert) for condition in parsed)
    if alert.service is None and matched:
        chosen = resolve_targets(alert, [rule], TARGETS)
        assert {str(t.id) for t in chosen} == set(body["service_ids"])


@examples(120)
@given(
    st.one_of(
        json_values(st.sampled_from(["name", "conditions", "service_ids", "field", "op", "value"])),
        rules().flatmap(broken),
    ),
    alerts,
)
@example(
    {"name": "r", "conditions": [{"field": "summary", "op": "regex", "value": "(a+)+$"}]}, None
)
@example(
    {"name": "r", "conditions": [{"field": "summary", "op": "regex", "value": "(" * 300}]}, None
)
@example({"name": "r", "conditions": [], "service_ids": ["1" * 10_000]}, None)
def test_any_rule_parses_or_names_the_field(body: Any, alert: Alert | None) -> None:
    rule = outcome(lambda: parse_rule(body), InputError)
    if isinstance(rule, InputError):
        assert_names_a_field(rule)
        return
    for condition in rule[1]:
        if condition.op == "regex":
            assert condition.value is not None
            assert isinstance(compiled(condition.value), Regex)
        if alert is not None:
            holds(condition, alert)


@examples(60)
@given(rules().filter(lambda r: r["conditions"]), st.data())
def test_a_mistyped_rule_field_is_named(body: dict[str, Any], data: st.DataObject) -> None:
    typed = [p for p in leaf_paths(body) if p[0] != "conditions" or len(p) <= 3]
    path = data.draw(st.sampled_from(typed))
    value = get_at(body, path)
    if path[-1] == "value" or (path[-1] == "op" and value == "exists"):
        # A value is refused by type only where the op needs a string.
        return
    with pytest.raises(InputError) as refused:
        parse_rule(set_at(body, path, data.draw(other_type(value))))
    assert refused.value.field == render(path)


@pytest.mark.parametrize("conditions", [0, False, "", {}])
def test_conditions_that_are_not_a_list_never_make_a_catch_all(conditions: object) -> None:
    body = {"name": "r", "conditions": conditions, "service_ids": [str(TARGETS[0].id)]}
    with pytest.raises(InputError) as refused:
        parse_rule(body)
    assert refused.value.field == "conditions"


@examples(100)
@given(regexes)
@example("(a+)+$")
@example("(x+){2,}")
@example("[(]+(")
def test_a_regex_condition_is_accepted_only_if_re2_compiles_it(pattern: str) -> None:
    body = {
        "name": "r",
        "conditions": [{"field": "summary", "op": "regex", "value": pattern}],
        "service_ids": [str(TARGETS[0].id)],
    }
    rule = outcome(lambda: parse_rule(body), InputError)
    if isinstance(rule, InputError):
        assert rule.field == "conditions[0].value"
        return
    [condition] = rule[1]
    assert len(pattern) <= REGEX_MAX_LENGTH
    assert isinstance(compiled(pattern), Regex)
    # RE2 is linear: the longest value a regex sees is no threat, whatever the pattern.
    holds(condition, Alert(status="firing", dedup_key="k", summary="a" * 1023 + "!"))


@examples(60)
@given(
    st.lists(
        st.one_of(nasty_text, st.builds("{} = {}".format, nasty_text, nasty_text)), max_size=5
    ),
    st.one_of(st.just(""), st.sampled_from(PD_SEVERITIES), nasty_text),
)
@example(["SEV 1 = critical", "sev-1 = info"], "")
@example(["no separator"], "error")
def test_the_severity_form_saves_or_names_the_line(lines: list[str], default: str) -> None:
    severities = outcome(
        lambda: parse_severity_map(parse_severity_lines("\n".join(lines), default)), InputError
    )
    if isinstance(severities, InputError):
        assert_names_a_field(severities)
        return
    assert severities.default in PD_SEVERITIES
