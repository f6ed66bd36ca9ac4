"""Which of the tenant's services an alert goes to.

In order: an alert naming its `service` goes there (our id, then PagerDuty id, then name
without case); else the first rule whose conditions all hold sends it to that rule's services
(a rule without conditions is the catch-all); else, for a tenant with no rules and exactly one
service, that service. Anything else is `NoRoute`: refused, never dropped.

Ingest matches through the rules compiled (app/ingest/rule_index.py, kept with the tenant's
`RoutingView`), which finds the same first rule without trying each in turn; `first_match`
without it tries them in order.

Regex conditions are RE2 patterns (app/ingest/_regex.py), linear in the value they search. What
one request may spend matching is still a product (up to 100 rules, 20 conditions each, 1 000
alerts of 1 KiB values, times the size of each compiled pattern), so it runs against a
`MatchBudget` of CPU time, in a thread of its own (app/ingest/lanes.py) so that the event
loop, which serves every tenant, never waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from app.errors import InputError, text_problem
from app.ingest._regex import CALL_WORK, Regex, RegexRefused, already_compiled, compiled, encode
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.templates import Shaping

if TYPE_CHECKING:
    from app.ingest.rule_index import RuleIndex

RULE_NAME_MAX_LENGTH = 100
CONDITIONS_MAX = 20
RULE_SERVICES_MAX = 20
REGEX_MAX_LENGTH = 200
VALUE_MAX_LENGTH = 1024
LABEL_NAME_MAX_LENGTH = 100
# Regexes see at most this much of a value, so one match costs a bounded amount.
MATCH_INPUT_MAX_LENGTH = 1024
# The CPU time one request may spend matching its alerts against the rules. Ordinary rule
# sets take a few milliseconds for a batch; 1 000 alerts each falling through 50 regex rules
# take about 0.15 s. Past this the request is refused, whatever its size: its sender can split
# it, its tenant can simplify the rules. Kept low because on a loaded machine a thread gets a
# fraction of a core: a request at the limit still ends within a second or two.
MATCH_CPU_SECONDS_MAX = 0.25
# Reading a thread's CPU clock costs as much as a short search, so the budget reads it only
# once the work since the last reading could have cost about a millisecond (a work unit costs
# at most about 8 ns, see app/ingest/_regex.py).
WORK_BETWEEN_CLOCK_READS = 125_000
# Matching on the event loop (most requests: a few alerts, rules on labels, short patterns)
# is allowed this much time in all, read from a clock cheap to read, and no single search whose
# bound (work units, at most about 8 ns each) exceeds INLINE_SEARCH_WORK: so it holds the loop
# for at most about INLINE_SECONDS plus one such search, some 1.2 ms. Past either, it moves to
# a routing thread.
INLINE_SECONDS = 0.001
INLINE_SEARCH_WORK = 25_000
Op = Literal["equals", "regex", "exists"]
Action = Literal["page", "suppress"]
ACTIONS: tuple[Action, ...] = ("page", "suppress")
OPS: tuple[Op, ...] = ("equals", "regex", "exists")
FIELDS = ("summary", "severity", "source", "component", "group", "class", "dedup_key", "status")
LABEL_PREFIX = "labels."


@dataclass(frozen=True)
class Condition:
    field: str
    op: Op
    value: str | None


@dataclass(frozen=True)
class Rule:
    """All conditions must hold; no conditions is the catch-all. Its action pages its
    services, or (`suppress`) accepts the alert and pages nobody; its templates (if any) shape
    the event."""

    id: UUID
    name: str
    conditions: tuple[Condition, ...]
    service_ids: tuple[UUID, ...]
    action: Action = "page"
    shaping: Shaping | None = None


@dataclass(frozen=True)
class Target:
    id: UUID
    pd_service_id: str | None
    name: str


class NoRoute(InputError):
    def __init__(
        self, field: str = "", message: str = "no routing rule matches; add one or name a service"
    ) -> None:
        super().__init__(field, message, status=422)


class MatchingTooCostly(InputError):
    """The request's alerts cost more matching than one request may: fix the input (fewer
    alerts per request, or cheaper rules), since the same request would cost as much again."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            "",
            f"matching these alerts against the routing rules took more than {seconds:g} s of "
            "CPU; send fewer alerts per request, or use fewer or simpler regex conditions",
            status=422,
        )


class NotInline(Exception):
    """Matching would cost more than the event loop may spend on it: match in a thread."""


class MatchBudget:
    """The CPU time one request may spend matching, read from the clock of the thread that
    matches (so make one in that thread): other requests' work never counts against it.

    `MatchBudget.inline()` is for matching on the event loop itself: it raises `NotInline` as
    soon as matching has taken INLINE_SECONDS, or before a search whose bound is more than
    INLINE_SEARCH_WORK, so that the request is matched again in a routing thread (where the
    budget is the whole MATCH_CPU_SECONDS_MAX). Handing a request to a thread and back costs
    more than matching most requests does."""

    def __init__(self, seconds: float = MATCH_CPU_SECONDS_MAX, *, inline: bool = False) -> None:
        self.seconds = seconds
        self._unread = 0
        self.is_inline = inline
        # Inline, the wall clock (cheap to read, and the loop's thread does nothing else
        # meanwhile); in a thread, that thread's CPU clock (read now and then: it costs more).
        self._started = time.perf_counter() if inline else time.thread_time()

    @classmethod
    def inline(cls) -> MatchBudget:
        return cls(inline=True)

    def spend(self, work: int, *, inline_limit: int = INLINE_SEARCH_WORK) -> None:
        """Spend `work` units; inline, `inline_limit` bounds one search (a larger one, one
        that answers many patterns at once, says why it may hold the loop longer)."""
        if self.is_inline:
            if work > inline_limit or time.perf_counter() - self._started > INLINE_SECONDS:
                raise NotInline()
            return
        self._unread += work
        if self._unread < WORK_BETWEEN_CLOCK_READS:
            return
        self._unread = 0
        if time.thread_time() - self._started > self.seconds:
            raise MatchingTooCostly(self.seconds)


def parse_rule(
    body: object, stored_patterns: frozenset[str] = frozenset()
) -> tuple[str, tuple[Condition, ...], tuple[UUID, ...]]:
    """A rule from the admin API or the settings form: `{"name", "conditions": [{"field",
    "op", "value"}], "service_ids": […]}`. A regex in `stored_patterns` (the tenant's rules as
    saved) is kept even if RE2 refuses it: it matches nothing, and refusing it would make every
    other edit of the rules fail, removing the rule included."""
    if not isinstance(body, dict):
        raise InputError("", "a rule must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError("name", "required")
    name = name.strip()
    if len(name) > RULE_NAME_MAX_LENGTH or text_problem(name):
        raise InputError("name", f"at most {RULE_NAME_MAX_LENGTH} characters of text")
    # Only an absent list means no conditions: a falsy `0` or `{}` read as one would make the
    # rule a catch-all.
    raw_conditions = body.get("conditions")
    conditions = parse_conditions([] if raw_conditions is None else raw_conditions, stored_patterns)
    if parse_action(body) == "suppress":
        if body.get("service_ids"):
            raise InputError("service_ids", "a rule that does not page names no services")
        return name, conditions, ()
    return name, conditions, _service_ids(body.get("service_ids"))


def parse_action(body: dict[str, Any]) -> Action:
    action = body.get("action")
    if action is None:
        return "page"
    if action not in ACTIONS:
        raise InputError("action", "page (send to its services) or suppress (accept, page nobody)")
    return "suppress" if action == "suppress" else "page"


def parse_conditions(
    raw: object, stored_patterns: frozenset[str] = frozenset()
) -> tuple[Condition, ...]:
    if not isinstance(raw, list):
        raise InputError("conditions", "must be a list")
    if len(raw) > CONDITIONS_MAX:
        raise InputError("conditions", f"at most {CONDITIONS_MAX} conditions")
    return tuple(_condition(c, f"conditions[{i}]", stored_patterns) for i, c in enumerate(raw))


def _condition(value: object, path: str, stored_patterns: frozenset[str]) -> Condition:
    if not isinstance(value, dict):
        raise InputError(path, "must be an object {field, op, value}")
    field = value.get("field")
    if not isinstance(field, str) or not _known_field(field):
        raise InputError(f"{path}.field", f"must be one of {', '.join(FIELDS)}, or labels.<name>")
    op = value.get("op")
    if op not in OPS:
        raise InputError(f"{path}.op", "must be equals, regex or exists")
    raw = value.get("value")
    if op == "exists":
        if raw is not None:
            raise InputError(f"{path}.value", "exists takes no value")
        return Condition(field=field, op="exists", value=None)
    if not isinstance(raw, str) or text_problem(raw):
        raise InputError(f"{path}.value", "required: a string")
    if op == "equals":
        if len(raw) > VALUE_MAX_LENGTH:
            raise InputError(f"{path}.value", f"at most {VALUE_MAX_LENGTH} characters")
        return Condition(field=field, op="equals", value=raw)
    if raw not in stored_patterns:
        _check_regex(raw, f"{path}.value")
    return Condition(field=field, op="regex", value=raw)


def _known_field(field: str) -> bool:
    if field.startswith(LABEL_PREFIX):
        label = field[len(LABEL_PREFIX) :]
        return 0 < len(label) <= LABEL_NAME_MAX_LENGTH and not text_problem(label)
    return field in FIELDS


def _check_regex(pattern: str, path: str) -> None:
    if not pattern or len(pattern) > REGEX_MAX_LENGTH:
        raise InputError(path, f"a regex of 1 to {REGEX_MAX_LENGTH} characters")
    problem = regex_problem(pattern)
    if problem is not None:
        raise InputError(path, problem)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 refuses `pattern` (naming the construct), or None."""
    regex = compiled(pattern)
    return regex.message if isinstance(regex, RegexRefused) else None


def _service_ids(value: object) -> tuple[UUID, ...]:
    if not isinstance(value, list) or not value:
        raise InputError("service_ids", "required: a list of service ids")
    if len(value) > RULE_SERVICES_MAX:
        raise InputError("service_ids", f"at most {RULE_SERVICES_MAX} services")
    ids: list[UUID] = []
    for i, item in enumerate(value):
        service_id = _uuid(item)
        if service_id is None:
            raise InputError(f"service_ids[{i}]", "must be a service id (a UUID)")
        if service_id in ids:
            raise InputError(f"service_ids[{i}]", "listed twice")
        ids.append(service_id)
    return tuple(ids)


def as_uuid(value: object) -> UUID | None:
    return _uuid(value)


def _uuid(value: object) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


# Alert attributes by field name; `class` is a keyword in Python.
_ATTRIBUTES = {**{field: field for field in FIELDS}, "class": "class_"}
_CHANGE_ATTRIBUTES = {"summary": "summary", "source": "source"}


def _field_value(item: Alert | ChangeEvent, field: str) -> str | None:
    if isinstance(item, ChangeEvent):
        value = getattr(item, _CHANGE_ATTRIBUTES.get(field, ""), None)
    elif field.startswith(LABEL_PREFIX):
        value = item.labels.get(field[len(LABEL_PREFIX) :])
    else:
        value = getattr(item, _ATTRIBUTES.get(field, ""), None)
    return value if isinstance(value, str) else None


class ItemValues:
    """One item's field values, each looked up (and encoded for RE2) once for all the rules."""

    __slots__ = ("_encoded", "_item", "_searched", "_texts")

    def __init__(self, item: Alert | ChangeEvent) -> None:
        self._item = item
        self._texts: dict[str, str | None] = {}
        self._encoded: dict[str, bytes] = {}
        # (field, pattern) -> whether it matched: rules often repeat a condition (a cluster or
        # a severity pattern in many rules), which then costs one search per alert.
        self._searched: dict[tuple[str, str], bool] = {}

    def text(self, field: str) -> str | None:
        if field not in self._texts:
            self._texts[field] = _field_value(self._item, field)
        return self._texts[field]

    def encoded(self, field: str, value: str) -> bytes:
        if field not in self._encoded:
            self._encoded[field] = encode(value[:MATCH_INPUT_MAX_LENGTH])
        return self._encoded[field]


def holds(
    condition: Condition, item: Alert | ChangeEvent, budget: MatchBudget | None = None
) -> bool:
    """Whether the condition holds for the item; a regex spends `budget` (if any) on the
    search, and raises `MatchingTooCostly` once it is spent."""
    return _holds(condition, ItemValues(item), budget)


def _holds(condition: Condition, values: ItemValues, budget: MatchBudget | None) -> bool:
    value = values.text(condition.field)
    if value is None:
        return False
    if condition.op == "exists":
        return True
    if condition.value is None:
        return False
    if condition.op == "equals":
        return value == condition.value
    if condition.op != "regex":
        return False
    key = (condition.field, condition.value)
    found = values._searched.get(key)
    if found is not None:
        return found
    found = _search(condition.field, condition.value, value, values, budget)
    values._searched[key] = found
    return found


def _search(
    field: str, pattern: str, value: str, values: ItemValues, budget: MatchBudget | None
) -> bool:
    if budget is not None and budget.is_inline:
        cached = already_compiled(pattern)
        if cached is None:
            raise NotInline()
        regex: Regex | RegexRefused = cached
    else:
        regex = compiled(pattern)
    # A stored pattern that RE2 refuses (saved before rules were RE2) matches nothing rather
    # than failing ingest; the rules API and the settings page say so.
    if not isinstance(regex, Regex):
        return False
    text = values.encoded(field, value)
    if budget is not None:
        budget.spend(regex.work(text) + regex.take_compile_work())
    return regex.search(text)


def _named(service: str, targets: Sequence[Target]) -> Target:
    wanted = _uuid(service.strip())
    for target in targets:
        if wanted is not None and target.id == wanted:
            return target
    for target in targets:
        if target.pd_service_id is not None and target.pd_service_id == service.strip():
            return target
    name = service.strip().casefold()
    for target in targets:
        if target.name.strip().casefold() == name:
            return target
    raise NoRoute("service", "no such service; name one of yours by its id, PagerDuty id or name")


def resolve_targets(
    alert: Alert | ChangeEvent,
    rules: Sequence[Rule],
    targets: Sequence[Target],
    budget: MatchBudget | None = None,
) -> tuple[Target, ...]:
    chosen, rule = first_match(alert, rules, targets, budget)
    if rule is not None and rule.action == "suppress":
        raise NoRoute()
    return chosen


def first_match(
    alert: Alert | ChangeEvent,
    rules: Sequence[Rule],
    targets: Sequence[Target],
    budget: MatchBudget | None = None,
    *,
    index: RuleIndex | None = None,
) -> tuple[tuple[Target, ...], Rule | None]:
    """The alert's services and the rule that chose them (None: named, or the lone service);
    a `suppress` rule gives no services. NoRoute when nothing matches. `index`, the same
    rules compiled (app/ingest/rule_index.py), finds the same rule without trying each in
    turn; without it the rules are tried one after another."""
    if alert.service is not None:
        return (_named(alert.service, targets),), None
    by_id = {target.id: target for target in targets}
    values = ItemValues(alert)
    if index is not None:
        found = index.first(values, rules, by_id, budget)
        if found is not None:
            return found
        return _unmatched(rules, targets)
    # The loop below runs for every rule of every alert: it reads each condition once and
    # handles the cheap operators in place (a few hundred rules cost tenths of a millisecond).
    text = values.text
    for rule in rules:
        if budget is not None:
            # Equals and exists conditions cost little each, but 2 000 of them per alert do.
            budget.spend(CALL_WORK * (1 + len(rule.conditions)))
        for condition in rule.conditions:
            op = condition.op
            if op == "equals":
                if text(condition.field) != condition.value or condition.value is None:
                    break
            elif op == "exists":
                if text(condition.field) is None:
                    break
            elif not _holds(condition, values, budget):
                break
        else:
            if rule.action == "suppress":
                return (), rule
            chosen = tuple(dict.fromkeys(by_id[s] for s in rule.service_ids if s in by_id))
            # A rule whose services are all gone counts as not matching.
            if chosen:
                return chosen, rule
    return _unmatched(rules, targets)


def _unmatched(
    rules: Sequence[Rule], targets: Sequence[Target]
) -> tuple[tuple[Target, ...], Rule | None]:
    """No rule matches: the lone service of a tenant without rules, else NoRoute."""
    if not rules and len(targets) == 1:
        return (targets[0],), None
    if not targets:
        raise NoRoute("", "no PagerDuty service is connected; connect one in settings")
    raise NoRoute()


def all_hold(
    conditions: Sequence[Condition], item: Alert | ChangeEvent, budget: MatchBudget | None
) -> bool:
    """Whether every condition holds (a maintenance window's, say)."""
    values = ItemValues(item)
    return all(_holds(c, values, budget) for c in conditions)
