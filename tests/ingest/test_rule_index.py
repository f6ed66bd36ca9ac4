"""The compiled rules (app/ingest/rule_index.py) choose what trying each rule in turn chooses,
and keep to the matching budget."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ingest import rule_index
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.routing import (
    Condition,
    MatchBudget,
    MatchingTooCostly,
    NoRoute,
    NotInline,
    Rule,
    Target,
    first_match,
)
from app.ingest.rule_index import build_index
from app.ingest.severity import parse_severity_map
from app.ingest.view import RoutingView
from tests.ingest.test_routing import ALERT, DB, OPS, TARGETS, WEB
from tests.ingest.test_routing_budget import COSTLY, long_alerts

GONE = Target(id=UUID("44444444-4444-4444-8444-444444444444"), pd_service_id=None, name="Gone")
FIELDS = ("labels.team", "labels.env", "summary", "severity", "source", "status")
WORDS = ("", "dba", "web", "prod", "Disk full", "db1", "critical", "firing", "x" * 1030)
PATTERNS = (
    "^dba$",
    "db",
    "^(dba|web)$",
    "prod|staging",
    "^Disk",
    "full$",
    "\\bdb1\\b",
    "(?i)CRIT",
    "^$",
    "x{1024}$",
    "é",
    "[0-9]+",
    # Refused by RE2 (stored before rules were RE2): they match nothing.
    "(?=db)",
    "(a)\\1",
)


def conditions() -> st.SearchStrategy[Condition]:
    field = st.sampled_from(FIELDS)
    return st.one_of(
        st.builds(Condition, field, st.just("equals"), st.sampled_from(WORDS)),
        st.builds(Condition, field, st.just("regex"), st.sampled_from(PATTERNS)),
        st.builds(Condition, field, st.just("exists"), st.none()),
        # Stored rows this version cannot read as a condition never hold.
        st.builds(Condition, field, st.sampled_from(["equals", "regex"]), st.none()),
        st.builds(Condition, field, st.just(cast(Any, "startswith")), st.just("d")),
    )


def rules() -> st.SearchStrategy[list[Rule]]:
    rule = st.builds(
        lambda conds, services, suppress: Rule(
            id=uuid4(),
            name="r",
            conditions=tuple(conds),
            service_ids=() if suppress else tuple(s.id for s in services),
            action="suppress" if suppress else "page",
        ),
        st.lists(conditions(), max_size=4),
        st.lists(st.sampled_from((DB, WEB, OPS, GONE)), min_size=1, max_size=3),
        st.booleans(),
    )
    return st.lists(rule, max_size=12)


def items() -> st.SearchStrategy[Alert | ChangeEvent]:
    word = st.sampled_from(WORDS)
    labels = st.dictionaries(st.sampled_from(("team", "env", "other")), word, max_size=3)
    alert = st.builds(
        lambda labels, summary, severity, source, status: replace(
            ALERT,
            labels=labels,
            summary=summary,
            severity=severity,
            source=source,
            status=status,
        ),
        labels,
        word,
        word,
        st.none() | word,
        st.sampled_from(("firing", "resolved")),
    )
    change = st.builds(
        lambda summary, source: ChangeEvent(
            summary=summary, source=source, timestamp=None, details={}, links=(), service=None
        ),
        word,
        st.none() | word,
    )
    return alert | change


def outcome(
    item: Alert | ChangeEvent, rule_list: list[Rule], targets: tuple[Target, ...], **kw: Any
) -> object:
    try:
        return first_match(item, rule_list, targets, MatchBudget(), **kw)
    except NoRoute as exc:
        return ("no route", exc.field, exc.message)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), st.lists(items(), min_size=1, max_size=5), st.sampled_from([TARGETS, (WEB,), ()]))
def test_the_index_chooses_what_trying_each_rule_in_turn_chooses(
    rule_list: list[Rule], batch: list[Alert | ChangeEvent], targets: tuple[Target, ...]
) -> None:
    index = build_index(rule_list)
    for item in batch:
        expected = outcome(item, rule_list, targets)
        assert outcome(item, rule_list, targets, index=index) == expected


def test_two_patterns_on_one_field_must_both_match() -> None:
    both = Rule(
        id=uuid4(),
        name="both",
        conditions=(Condition("summary", "regex", "^Disk"), Condition("summary", "regex", "db2")),
        service_ids=(DB.id,),
    )
    either = Rule(
        id=uuid4(),
        name="either",
        conditions=(Condition("summary", "regex", "db1|db2"),),
        service_ids=(WEB.id,),
    )
    index = build_index([both, either])
    assert first_match(ALERT, [both, either], TARGETS, index=index) == ((WEB,), either)
    db2 = replace(ALERT, summary="Disk almost full on db2")
    assert first_match(db2, [both, either], TARGETS, index=index) == ((DB,), both)


def numbered(count: int, field: str, op: str, value: Callable[[int], str]) -> list[Rule]:
    """`count` rules to DB, rule i with one condition whose value is `value(i)`."""
    return [
        Rule(
            id=uuid4(),
            name=f"r{i}",
            conditions=(Condition(field, cast(Any, op), value(i)),),
            service_ids=(DB.id,),
        )
        for i in range(count)
    ]


def test_a_field_whose_patterns_cannot_share_a_set_is_searched_pattern_by_pattern() -> None:
    # Thirty programs of 6 000 instructions are more than a Set may hold.
    rules_ = numbered(30, "summary", "regex", lambda i: f"{COSTLY}{i}|^Disk.*db{i}$")
    index = build_index(rules_)
    for n in (1, 7, 29, 31):
        item = replace(ALERT, summary=f"Disk almost full on db{n}")
        expected = outcome(item, rules_, TARGETS)
        assert outcome(item, rules_, TARGETS, index=index) == expected


def view_of(rule_list: list[Rule]) -> RoutingView:
    return RoutingView(services=(), rules=tuple(rule_list), severities=parse_severity_map(None))


def test_the_event_loop_builds_only_a_cheap_index() -> None:
    teams = numbered(50, "labels.team", "equals", lambda i: f"team-{i}")
    cheap = view_of(teams)
    assert cheap.rule_index(MatchBudget.inline()) is cheap.rule_index(MatchBudget.inline())
    pattern = Rule(
        id=uuid4(),
        name="p",
        conditions=(Condition("summary", "regex", f"^new-{uuid4().hex}"),),
        service_ids=(DB.id,),
    )
    costly = view_of([*teams, pattern])
    with pytest.raises(NotInline):
        costly.rule_index(MatchBudget.inline())
    # Built once in a routing thread, the view's index then serves the loop too.
    built = costly.rule_index(MatchBudget())
    assert costly.rule_index(MatchBudget.inline()) is built
    # The same rules read again (a view after any change notice of the tenant) find it too.
    assert view_of([*teams, pattern]).rule_index(MatchBudget.inline()) is built


def test_a_set_search_too_long_for_the_loop_moves_to_a_thread() -> None:
    rules_ = numbered(20, "summary", "regex", lambda i: f"^Disk (almost )?full on db{i}$")
    index = build_index(rules_)
    short = replace(ALERT, summary="Disk full on db3")
    assert first_match(short, rules_, TARGETS, MatchBudget.inline(), index=index)[1] == rules_[3]
    with pytest.raises(NotInline):
        first_match(long_alerts(1)[0], rules_, TARGETS, MatchBudget.inline(), index=index)
    with pytest.raises(NoRoute):
        first_match(long_alerts(1)[0], rules_, TARGETS, MatchBudget(), index=index)


def test_the_index_spends_the_budget_on_its_searches() -> None:
    distinct = numbered(20, "summary", "regex", lambda i: f"{COSTLY}{i}")
    index = build_index(distinct)
    budget = MatchBudget(0.05)

    def route_all() -> None:
        for alert in long_alerts(1000):
            first_match(alert, distinct, TARGETS, budget, index=index)

    started = time.thread_time()
    with pytest.raises(MatchingTooCostly):
        route_all()
    assert time.thread_time() - started < 0.05 + 0.15


def test_a_views_sets_give_their_memory_back_with_it() -> None:
    before = rule_index._reserved
    patterns = [
        Rule(
            id=uuid4(),
            name=f"r{i}",
            conditions=(Condition("summary", "regex", f"^Disk.*db{i}$"),),
            service_ids=(DB.id,),
        )
        for i in range(5)
    ]
    index = build_index(patterns)
    assert rule_index._reserved > before
    del index
    gc.collect()
    assert rule_index._reserved == before
