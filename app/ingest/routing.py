"""Which of the tenant's services an alert goes to.

In order: an alert naming its `service` goes there (our id, then PagerDuty id, then name
without case); else the first rule whose conditions all hold sends it to that rule's services
(a rule without conditions is the catch-all); else, for a tenant with no rules and exactly one
service, that service. Anything else is `NoRoute`: refused, never dropped.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from app.errors import InputError
from app.ingest._regex import has_nested_repetition
from app.ingest._values import text_problem
from app.ingest.alert import Alert, ChangeEvent

RULE_NAME_MAX_LENGTH = 100
CONDITIONS_MAX = 20
RULE_SERVICES_MAX = 20
REGEX_MAX_LENGTH = 200
VALUE_MAX_LENGTH = 1024
LABEL_NAME_MAX_LENGTH = 100
# Regexes see at most this much of a value, so one match costs a bounded amount.
MATCH_INPUT_MAX_LENGTH = 1024
REGEX_CACHE_SIZE = 1024

Op = Literal["equals", "regex", "exists"]
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
    """All conditions must hold; no conditions is the catch-all."""

    id: UUID
    name: str
    conditions: tuple[Condition, ...]
    service_ids: tuple[UUID, ...]


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


def parse_rule(body: object) -> tuple[str, tuple[Condition, ...], tuple[UUID, ...]]:
    """A rule from the admin API or the settings form: `{"name", "conditions": [{"field",
    "op", "value"}], "service_ids": […]}`."""
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
    if raw_conditions is None:
        raw_conditions = []
    if not isinstance(raw_conditions, list):
        raise InputError("conditions", "must be a list")
    if len(raw_conditions) > CONDITIONS_MAX:
        raise InputError("conditions", f"at most {CONDITIONS_MAX} conditions")
    conditions = tuple(_condition(c, f"conditions[{i}]") for i, c in enumerate(raw_conditions))
    return name, conditions, _service_ids(body.get("service_ids"))


def _condition(value: object, path: str) -> Condition:
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
    if _compiled(pattern) is None:
        raise InputError(path, "is not a valid regular expression")
    if has_nested_repetition(pattern):
        raise InputError(
            path,
            "a repeated group holding a repetition, like (a+)+, can take exponential time; "
            "write it without the outer repetition",
        )


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


def _uuid(value: object) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


@functools.lru_cache(maxsize=REGEX_CACHE_SIZE)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError, ValueError):
        return None


def _field_value(item: Alert | ChangeEvent, field: str) -> str | None:
    if isinstance(item, ChangeEvent):
        return {"summary": item.summary, "source": item.source}.get(field)
    if field.startswith(LABEL_PREFIX):
        return item.labels.get(field[len(LABEL_PREFIX) :])
    values: dict[str, Any] = {
        "summary": item.summary,
        "severity": item.severity,
        "source": item.source,
        "component": item.component,
        "group": item.group,
        "class": item.class_,
        "dedup_key": item.dedup_key,
        "status": item.status,
    }
    value = values.get(field)
    return value if isinstance(value, str) else None


def holds(condition: Condition, item: Alert | ChangeEvent) -> bool:
    value = _field_value(item, condition.field)
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
    pattern = _compiled(condition.value)
    # A stored pattern that no longer compiles matches nothing rather than failing ingest.
    return pattern is not None and pattern.search(value[:MATCH_INPUT_MAX_LENGTH]) is not None


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
    alert: Alert | ChangeEvent, rules: Sequence[Rule], targets: Sequence[Target]
) -> tuple[Target, ...]:
    if alert.service is not None:
        return (_named(alert.service, targets),)
    by_id = {target.id: target for target in targets}
    for rule in rules:
        if not all(holds(condition, alert) for condition in rule.conditions):
            continue
        chosen = tuple(dict.fromkeys(by_id[s] for s in rule.service_ids if s in by_id))
        # A rule whose services are all gone counts as not matching.
        if chosen:
            return chosen
    if not rules and len(targets) == 1:
        return (targets[0],)
    if not targets:
        raise NoRoute("", "no PagerDuty service is connected; connect one in settings")
    raise NoRoute()
