"""A tenant's routing rules compiled once, so that finding an alert's first matching rule
costs work that grows with the fields the rules read, not with the number of rules.

Rule i is bit i of an int. Per field that some condition reads, masks computed when the index
is built say which rules one value of that field rules out (`killed`):
- an absent field kills every rule with a condition on it;
- `equals`: a value keeps the rules whose equals conditions on the field all name that value;
- `exists` holds whenever the field is there;
- `regex`: the field's distinct patterns are one RE2 Set, so one scan of the value answers
  them all; a value keeps the rules with a matching pattern on the field.
The answer is the lowest bit alive and not killed, once two checks pass that masks cannot
make: a rule with two different patterns on one field (the mask keeps it when either matches)
has all of them looked up, and a page rule whose services are all gone counts as not matching,
as in `routing.first_match`, whose results these are.

Rules that can never match (a stored pattern RE2 refuses, a condition without its value, two
different `equals` values on one field) are left out when the index is built.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import re2

from app.ingest._regex import CACHE_SIZE, CALL_WORK, MAX_MEM, Regex, compiled, options
from app.ingest.routing import Condition, ItemValues, MatchBudget, NotInline, Rule, Target

# A Set holds the patterns of one field (up to 100 rules of 20 conditions). Its memory bounds
# its program and the DFA states its searches build as they go (allocated as used: ordinary
# patterns and values take a small part, but values chosen to visit new states fill it). A Set
# may have as much as the patterns it stands for would each (app/ingest/_regex.py MAX_MEM), up
# to SET_MAX_MEM: room for some 30 000 instructions and the states of a search. The sets of one
# view may reserve VIEW_SETS_MAX_MEM, and those of the whole process (views of up to
# VIEWS_MAX_TENANTS tenants) PROCESS_SETS_MAX_MEM, which is what the process's cache of single
# patterns may hold at worst. A field whose Set does not fit, or does not compile, is searched
# pattern by pattern (the single patterns' cache bounds those).
SET_MAX_MEM = 4 * MAX_MEM
VIEW_SETS_MAX_MEM = 4 * SET_MAX_MEM
PROCESS_SETS_MAX_MEM = CACHE_SIZE * MAX_MEM
# A set search is bounded like one search: program size times bytes, a unit costing at most
# about 8 to 10 ns (measured: a DFA that has to build a new state at every byte; ordinary
# searches cost a hundredth of that). It answers every pattern of a field, each of which the
# event loop would have been allowed INLINE_SEARCH_WORK, so it may hold the loop for up to
# about 1 ms (the loop's total is still INLINE_SECONDS, checked between searches), past which
# the request moves to a routing thread.
INLINE_SET_SEARCH_WORK = 125_000
# Building an index without patterns (equals and exists conditions) is a pass over the
# conditions: a few hundred of them take a fraction of a millisecond, so the event loop may do
# it. Any pattern to compile, or more conditions, and the first request after a change of rules
# builds it in a routing thread instead.
INLINE_BUILD_CONDITIONS_MAX = 400

_UNANCHORED = re2._re2.RE2.Anchor.UNANCHORED
# Memory the live Sets may use, released as each is collected (with the view that holds it).
_reserved = 0
_reserved_lock = threading.Lock()


def _reserve(memory: int) -> bool:
    global _reserved
    with _reserved_lock:
        if _reserved + memory > PROCESS_SETS_MAX_MEM:
            return False
        _reserved += memory
        return True


def _release(memory: int) -> None:
    global _reserved
    with _reserved_lock:
        _reserved -= memory


class _Patterns:
    """One field's distinct patterns: which of them match a value, by one scan when they
    compile together into a Set, else by one search each."""

    __slots__ = ("__weakref__", "_regexes", "_set", "_size")

    def __init__(self, regexes: Sequence[Regex], memory: int) -> None:
        """`memory`: what a Set of them may use (0: no Set)."""
        self._size = sum(regex.size for regex in regexes)
        self._set = _compiled_set(regexes, memory) if memory else None
        if self._set is None:
            self._regexes: tuple[Regex, ...] = tuple(regexes)
        else:
            # The Set answers for them: the single patterns' cache keeps them or not.
            self._regexes = ()
            weakref.finalize(self, _release, memory)

    def matching(self, value: bytes, budget: MatchBudget | None) -> list[int]:
        if self._set is not None:
            if budget is not None:
                budget.spend(
                    CALL_WORK + self._size * (len(value) + 1), inline_limit=INLINE_SET_SEARCH_WORK
                )
            hits: list[int] = self._set.Match(value)
            return hits
        found = []
        for i, regex in enumerate(self._regexes):
            if budget is not None:
                budget.spend(regex.work(value))
            if regex.search(value):
                found.append(i)
        return found


def _set_memory(count: int) -> int:
    """What a Set of `count` patterns may use; 0 for a single pattern (searched alone)."""
    return 0 if count < 2 else min(SET_MAX_MEM, count * MAX_MEM)


def _compiled_set(regexes: Sequence[Regex], memory: int) -> Any:
    """The patterns as one Set, or None if it does not compile or the process has no room."""
    if not _reserve(memory):
        return None
    patterns = re2._re2.Set(_UNANCHORED, options(memory))
    # Each pattern compiled alone already; the Set numbers them in the order added.
    added = all(patterns.Add(r.pattern.encode("utf-8")) == i for i, r in enumerate(regexes))
    if added and patterns.Compile():
        return patterns
    _release(memory)
    return None


@dataclass
class _Field:
    """The masks of one field (bits: rules)."""

    name: str
    any: int = 0
    equals: int = 0
    # value -> the rules whose equals conditions on this field all name it
    accepts: dict[str, int] | None = None
    regex: int = 0
    # pattern index -> the rules with that pattern on this field
    by_pattern: list[int] | None = None
    patterns: _Patterns | None = None


@dataclass(frozen=True)
class _Check:
    """A rule the masks may keep wrongly: each of its (field index, pattern index) must match."""

    needs: tuple[tuple[int, int], ...]


class RuleIndex:
    """The conditions of a rule list compiled; build with `build_index`. It knows the rules
    by position only, so any rule list with the same conditions in the same order (the same
    tenant's rules read again) uses it. Shared by the event loop and routing threads: nothing
    in it changes once built (RE2 Set matching is thread-safe)."""

    __slots__ = ("_alive", "_checked", "_checks", "_fields")

    def __init__(
        self,
        fields: tuple[_Field, ...],
        alive: int,
        checks: Mapping[int, _Check],
    ) -> None:
        self._fields = fields
        self._alive = alive
        self._checks = dict(checks)
        self._checked = sum(1 << i for i in checks)

    def first(
        self,
        values: ItemValues,
        rules: Sequence[Rule],
        by_id: Mapping[UUID, Target],
        budget: MatchBudget | None,
    ) -> tuple[tuple[Target, ...], Rule] | None:
        """The first of `rules` (those the index was built from) whose conditions all hold
        and the services it gives (none for a `suppress` rule); None when no rule matches."""
        if budget is not None:
            budget.spend(CALL_WORK * (1 + len(self._fields)))
        alive = self._alive
        killed = 0
        hits: dict[int, list[int]] = {}
        for position, field in enumerate(self._fields):
            if not field.any & alive & ~killed:
                continue
            value = values.text(field.name)
            if value is None:
                killed |= field.any
                continue
            if field.accepts is not None:
                killed |= field.equals & ~field.accepts.get(value, 0)
            if field.patterns is None or not field.regex & alive & ~killed:
                continue
            assert field.by_pattern is not None
            matching = field.patterns.matching(values.encoded(field.name, value), budget)
            kept = 0
            for i in matching:
                kept |= field.by_pattern[i]
            killed |= field.regex & ~kept
            hits[position] = matching
        return self._lowest(alive & ~killed, hits, rules, by_id, budget)

    def _lowest(
        self,
        candidates: int,
        hits: dict[int, list[int]],
        rules: Sequence[Rule],
        by_id: Mapping[UUID, Target],
        budget: MatchBudget | None,
    ) -> tuple[tuple[Target, ...], Rule] | None:
        while candidates:
            low = candidates & -candidates
            candidates ^= low
            position = low.bit_length() - 1
            if budget is not None:
                budget.spend(CALL_WORK)
            if low & self._checked:
                needs = self._checks[position].needs
                if not all(pattern in hits[field] for field, pattern in needs):
                    continue
            rule = rules[position]
            if rule.action == "suppress":
                return (), rule
            chosen = tuple(dict.fromkeys(by_id[s] for s in rule.service_ids if s in by_id))
            # A rule whose services are all gone counts as not matching.
            if chosen:
                return chosen, rule
        return None


def cheap_to_build(rules: Sequence[Rule]) -> bool:
    """Whether the event loop may build the index (no pattern to compile, few conditions)."""
    count = 0
    for rule in rules:
        for condition in rule.conditions:
            if condition.op == "regex":
                return False
            count += 1
    return count <= INLINE_BUILD_CONDITIONS_MAX


def build_index(rules: Sequence[Rule]) -> RuleIndex:
    """The rules compiled: their patterns each alone (a pattern RE2 refuses matches nothing,
    as in `routing.first_match`) and per field in one Set."""
    fields: dict[str, _Field] = {}
    patterns: dict[str, dict[str, int]] = {}
    regexes: dict[str, list[Regex]] = {}
    alive = 0
    # rule -> the (field, pattern index) pairs it needs, where it has two patterns on a field
    pending: dict[int, list[tuple[str, int]]] = {}
    for position, rule in enumerate(rules):
        kept = _conditions(rule)
        if kept is None:
            continue
        equals, exists, regex = kept
        bit = 1 << position
        alive |= bit
        for name in exists:
            fields.setdefault(name, _Field(name)).any |= bit
        for name, value in equals.items():
            field = fields.setdefault(name, _Field(name))
            field.any |= bit
            field.equals |= bit
            field.accepts = field.accepts or {}
            field.accepts[value] = field.accepts.get(value, 0) | bit
        needs: list[tuple[str, int]] = []
        for name, found in regex.items():
            field = fields.setdefault(name, _Field(name))
            field.any |= bit
            field.regex |= bit
            numbers = patterns.setdefault(name, {})
            field.by_pattern = field.by_pattern or []
            for one in found:
                if one.pattern not in numbers:
                    numbers[one.pattern] = len(numbers)
                    regexes.setdefault(name, []).append(one)
                    field.by_pattern.append(0)
                field.by_pattern[numbers[one.pattern]] |= bit
            if len(found) > 1:
                needs.extend((name, numbers[one.pattern]) for one in found)
        if needs:
            pending[position] = needs
    view_memory = VIEW_SETS_MAX_MEM
    for name, field in fields.items():
        if name in regexes:
            memory = _set_memory(len(regexes[name]))
            memory = memory if memory <= view_memory else 0
            view_memory -= memory
            field.patterns = _Patterns(regexes[name], memory)
    # Fields without patterns first: their masks are cheap, and may leave a field's patterns
    # with no rule to answer for, which then are not searched.
    ordered = sorted(fields.values(), key=lambda f: f.patterns is not None)
    position_of = {field.name: i for i, field in enumerate(ordered)}
    return RuleIndex(
        tuple(ordered),
        alive,
        {
            rule: _Check(tuple((position_of[name], n) for name, n in needs))
            for rule, needs in pending.items()
        },
    )


def _conditions(
    rule: Rule,
) -> tuple[dict[str, str], set[str], dict[str, list[Regex]]] | None:
    """A rule's conditions by field and operator, or None for a rule that never matches."""
    equals: dict[str, str] = {}
    exists: set[str] = set()
    regex: dict[str, list[Regex]] = {}
    for condition in rule.conditions:
        name, value = condition.field, condition.value
        if condition.op == "exists":
            exists.add(name)
        elif condition.op == "equals" and value is not None:
            if equals.setdefault(name, value) != value:
                return None
        elif condition.op == "regex" and value is not None:
            one = compiled(value)
            if not isinstance(one, Regex):
                return None
            found = regex.setdefault(name, [])
            if all(other.pattern != one.pattern for other in found):
                found.append(one)
        else:
            return None
    return equals, exists, regex


# Indexes by their rules' conditions, least recently used first: a tenant's view is read again
# after every change notice of the tenant (a service's health, say, not only its rules), and
# the same rules then find their index here instead of compiling it again. One per tenant the
# views' table holds (app/ingest/view.py VIEWS_MAX_TENANTS).
INDEXES_MAX = 1_000
_indexes: OrderedDict[tuple[tuple[Condition, ...], ...], RuleIndex] = OrderedDict()
_indexes_lock = threading.Lock()


def _known_index(key: tuple[tuple[Condition, ...], ...]) -> RuleIndex | None:
    with _indexes_lock:
        index = _indexes.get(key)
        if index is not None:
            _indexes.move_to_end(key)
        return index


def _keep_index(key: tuple[tuple[Condition, ...], ...], index: RuleIndex) -> None:
    with _indexes_lock:
        _indexes[key] = index
        if len(_indexes) > INDEXES_MAX:
            _indexes.popitem(last=False)


class RuleSlot:
    """Where a view keeps its rules' index: the one built for the same conditions if the
    process has it, else built on first use, on the event loop when that is cheap, else
    (`NotInline`) in the routing thread the request then moves to. Two threads building it at
    once build the same index; the last one kept is as good as the first.

    Building is not spent from the request's matching budget: it is paid once per rule list,
    not per request (and each pattern was compiled already when the rules were saved), so a
    request refused for it would be refused again with the same index still unbuilt."""

    __slots__ = ("_index",)

    def __init__(self) -> None:
        self._index: RuleIndex | None = None

    def get(self, rules: Sequence[Rule], budget: MatchBudget | None) -> RuleIndex:
        index = self._index
        if index is not None:
            return index
        # Hashing a few hundred conditions takes a fraction of a millisecond, once per view.
        key = tuple(rule.conditions for rule in rules)
        index = _known_index(key)
        if index is None:
            if budget is not None and budget.is_inline and not cheap_to_build(rules):
                raise NotInline()
            index = build_index(rules)
            _keep_index(key, index)
        self._index = index
        return index
