"""Which services an alert goes to."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import pytest

from app.errors import InputError
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.routing import (
    Condition,
    NoRoute,
    Rule,
    Target,
    holds,
    parse_rule,
    resolve_targets,
)

DB = Target(
    id=UUID("11111111-1111-4111-8111-111111111111"), pd_service_id="PDB0001", name="Databases"
)
WEB = Target(id=UUID("22222222-2222-4222-8222-222222222222"), pd_service_id="PWEB001", name="Web")
OPS = Target(id=UUID("33333333-3333-4333-8333-333333333333"), pd_service_id=None, name="Ops")
TARGETS = (DB, WEB, OPS)

ALERT = Alert(
    status="firing",
    dedup_key="disk/db1",
    summary="Disk almost full on db1",
    severity="critical",
    source="db1.example.com",
    component="postgres",
    group="storage",
    class_="disk",
    labels={"team": "dba", "env": "prod"},
    details={},
    links=(),
    images=(),
    timestamp=None,
    service=None,
)


def rule(*conditions: Condition, to: tuple[Target, ...]) -> Rule:
    return Rule(id=uuid4(), name="r", conditions=conditions, service_ids=tuple(t.id for t in to))


@pytest.mark.parametrize(
    "named",
    [
        "22222222-2222-4222-8222-222222222222",
        "22222222222242228222222222222222",
        "{22222222-2222-4222-8222-222222222222}",
        "PWEB001",
        "web",
        " WEB ",
    ],
)
def test_named_service_wins_over_rules(named: str) -> None:
    rules = [rule(to=(DB,))]
    assert resolve_targets(replace(ALERT, service=named), rules, TARGETS) == (WEB,)


def test_id_beats_pagerduty_id_beats_name() -> None:
    tricky = Target(id=uuid4(), pd_service_id="Web", name=str(DB.id))
    targets = (tricky, DB, WEB)
    assert resolve_targets(replace(ALERT, service=str(DB.id)), [], targets) == (DB,)
    assert resolve_targets(replace(ALERT, service="Web"), [], targets) == (tricky,)


def test_unknown_named_service_is_no_route_on_service() -> None:
    with pytest.raises(NoRoute) as caught:
        resolve_targets(replace(ALERT, service="Payments"), [], TARGETS)
    assert caught.value.field == "service"
    assert caught.value.status == 422


def test_first_matching_rule_in_order() -> None:
    rules = [
        rule(Condition("labels.team", "equals", "web"), to=(WEB,)),
        rule(Condition("labels.team", "equals", "dba"), to=(DB, OPS)),
        rule(to=(OPS,)),
    ]
    assert resolve_targets(ALERT, rules, TARGETS) == (DB, OPS)


def test_catch_all_rule_is_the_default() -> None:
    rules = [rule(Condition("labels.team", "equals", "web"), to=(WEB,)), rule(to=(OPS,))]
    assert resolve_targets(ALERT, rules, TARGETS) == (OPS,)


def test_all_conditions_must_hold() -> None:
    both = rule(
        Condition("labels.team", "equals", "dba"),
        Condition("severity", "equals", "warning"),
        to=(DB,),
    )
    with pytest.raises(NoRoute) as caught:
        resolve_targets(ALERT, [both], TARGETS)
    assert caught.value.field == ""
    assert "add one or name a service" in caught.value.message


def test_rule_with_only_missing_services_does_not_match() -> None:
    gone = Rule(id=uuid4(), name="old", conditions=(), service_ids=(uuid4(),))
    assert resolve_targets(ALERT, [gone, rule(to=(WEB,))], TARGETS) == (WEB,)
    partly = Rule(id=uuid4(), name="p", conditions=(), service_ids=(uuid4(), DB.id, DB.id))
    assert resolve_targets(ALERT, [partly], TARGETS) == (DB,)


def test_single_service_fallback_needs_no_rules_at_all() -> None:
    assert resolve_targets(ALERT, [], (WEB,)) == (WEB,)
    unmatched = rule(Condition("labels.team", "equals", "web"), to=(WEB,))
    with pytest.raises(NoRoute):
        resolve_targets(ALERT, [unmatched], (WEB,))
    with pytest.raises(NoRoute):
        resolve_targets(ALERT, [], TARGETS)


def test_no_services_at_all() -> None:
    with pytest.raises(NoRoute) as caught:
        resolve_targets(ALERT, [], ())
    assert "connect one" in caught.value.message


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (Condition("summary", "regex", r"db\d"), True),
        (Condition("summary", "regex", r"^Disk"), True),
        (Condition("summary", "regex", r"^disk"), False),
        (Condition("summary", "regex", r"(?i)^disk"), True),
        (Condition("source", "equals", "db1.example.com"), True),
        (Condition("source", "equals", "DB1.example.com"), False),
        (Condition("component", "equals", "postgres"), True),
        (Condition("group", "regex", "stor"), True),
        (Condition("class", "equals", "disk"), True),
        (Condition("dedup_key", "regex", "^disk/"), True),
        (Condition("status", "equals", "firing"), True),
        (Condition("severity", "equals", "critical"), True),
        (Condition("labels.env", "regex", "^prod$"), True),
        (Condition("labels.env", "exists", None), True),
        (Condition("labels.region", "exists", None), False),
        (Condition("labels.region", "regex", ".*"), False),
        (Condition("labels.region", "equals", ""), False),
        (Condition("component", "exists", None), True),
        (Condition("nonsense", "equals", "x"), False),
        (Condition("summary", "regex", "("), False),
        (Condition("summary", "equals", None), False),
    ],
)
def test_conditions(condition: Condition, expected: bool) -> None:
    assert holds(condition, ALERT) is expected


def test_regex_sees_only_the_first_1024_characters() -> None:
    long = replace(ALERT, summary="x" * 1024 + "needle")
    assert not holds(Condition("summary", "regex", "needle"), long)
    assert holds(Condition("summary", "regex", "^x{1000}x{24}$"), long)


def test_change_events_route_on_summary_and_source() -> None:
    change = ChangeEvent(
        summary="Deployed", source="ci", timestamp=None, details={}, links=(), service=None
    )
    rules = [
        rule(Condition("status", "equals", "firing"), to=(DB,)),
        rule(Condition("source", "equals", "ci"), to=(WEB,)),
    ]
    assert resolve_targets(change, rules, TARGETS) == (WEB,)
    assert resolve_targets(replace(change, service="Ops"), rules, TARGETS) == (OPS,)


def test_parse_rule() -> None:
    name, conditions, service_ids = parse_rule(
        {
            "name": " Databases ",
            "conditions": [
                {"field": "labels.team", "op": "equals", "value": "dba"},
                {"field": "summary", "op": "regex", "value": "disk|volume"},
                {"field": "labels.env", "op": "exists"},
            ],
            "service_ids": [str(DB.id), str(OPS.id).upper()],
        }
    )
    assert name == "Databases"
    assert conditions == (
        Condition("labels.team", "equals", "dba"),
        Condition("summary", "regex", "disk|volume"),
        Condition("labels.env", "exists", None),
    )
    assert service_ids == (DB.id, OPS.id)


def test_parse_rule_catch_all() -> None:
    assert parse_rule({"name": "all", "service_ids": [str(DB.id)]}) == ("all", (), (DB.id,))


GOOD_RULE: dict[str, Any] = {
    "name": "r",
    "conditions": [{"field": "summary", "op": "equals", "value": "x"}],
    "service_ids": [str(DB.id)],
}


def cond(**fields: Any) -> dict[str, Any]:
    return {**GOOD_RULE, "conditions": [fields]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("rule", ""),
        ({**GOOD_RULE, "name": ""}, "name"),
        ({**GOOD_RULE, "name": None}, "name"),
        ({**GOOD_RULE, "name": "n" * 101}, "name"),
        ({**GOOD_RULE, "conditions": "x"}, "conditions"),
        ({**GOOD_RULE, "conditions": [GOOD_RULE["conditions"][0]] * 21}, "conditions"),
        ({**GOOD_RULE, "conditions": ["summary"]}, "conditions[0]"),
        (cond(field="title", op="equals", value="x"), "conditions[0].field"),
        (cond(field="labels.", op="exists"), "conditions[0].field"),
        (cond(field="labels." + "l" * 101, op="exists"), "conditions[0].field"),
        (cond(field=5, op="exists"), "conditions[0].field"),
        (cond(field="summary", op="contains", value="x"), "conditions[0].op"),
        (cond(field="summary", op="equals"), "conditions[0].value"),
        (cond(field="summary", op="equals", value=3), "conditions[0].value"),
        (cond(field="summary", op="equals", value="v" * 1025), "conditions[0].value"),
        (cond(field="summary", op="exists", value="x"), "conditions[0].value"),
        (cond(field="summary", op="regex", value="("), "conditions[0].value"),
        (cond(field="summary", op="regex", value=""), "conditions[0].value"),
        (cond(field="summary", op="regex", value="a" * 201), "conditions[0].value"),
        (cond(field="summary", op="regex", value="(?=a)"), "conditions[0].value"),
        (cond(field="summary", op="regex", value="(a)\\1"), "conditions[0].value"),
        ({**GOOD_RULE, "service_ids": []}, "service_ids"),
        ({**GOOD_RULE, "service_ids": str(DB.id)}, "service_ids"),
        ({**GOOD_RULE, "service_ids": ["nope"]}, "service_ids[0]"),
        ({**GOOD_RULE, "service_ids": [str(DB.id), 7]}, "service_ids[1]"),
        ({**GOOD_RULE, "service_ids": [str(DB.id), str(DB.id)]}, "service_ids[1]"),
        ({**GOOD_RULE, "service_ids": [str(uuid4()) for _ in range(21)]}, "service_ids"),
    ],
)
def test_parse_rule_refusals(body: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_rule(body)
    assert caught.value.field == field
