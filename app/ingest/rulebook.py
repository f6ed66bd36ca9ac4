"""A tenant's routing rules and severity table, edited as a whole: the admin API and the
settings forms both save through here.

`save_rules` validates the whole ordered list (each rule with `routing.parse_rule`, each
service against the tenant's own) and replaces it in one transaction, with an audit entry;
`save_severity_map` does the same for the severity table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from app.deps import Deps
from app.errors import InputError
from app.ingest import store
from app.ingest.routing import parse_rule, regex_problem
from app.ingest.severity import SeverityMap, severity_map_to_json
from app.tenants.store import insert_audit


def rule_json(rule: store.StoredRule) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        "name": rule.name,
        "conditions": rule.conditions,
        "service_ids": [str(s) for s in rule.service_ids],
        "problems": rule_problems(rule),
    }


def rule_problems(rule: store.StoredRule) -> list[dict[str, str]]:
    """Conditions saved before rules were RE2 that RE2 refuses: they match nothing."""
    problems = []
    for index, condition in enumerate(rule.conditions):
        pattern = condition.get("value")
        if condition.get("op") != "regex" or not isinstance(pattern, str):
            continue
        problem = regex_problem(pattern)
        if problem is not None:
            problems.append(
                {
                    "field": f"conditions[{index}].value",
                    "message": f"{problem}; until it is changed, this condition matches nothing",
                }
            )
    return problems


def _stored_patterns(rules: Sequence[store.StoredRule]) -> frozenset[str]:
    return frozenset(
        c["value"]
        for rule in rules
        for c in rule.conditions
        if c.get("op") == "regex" and isinstance(c.get("value"), str)
    )


async def save_rules(deps: Deps, tenant_id: UUID, bodies: Sequence[object], *, actor: str) -> None:
    cap = deps.config.max_rules_per_tenant
    if len(bodies) > cap:
        raise InputError(
            "routes", f"{len(bodies)} rules; at most {cap} (PDCONNECT_MAX_RULES_PER_TENANT)"
        )
    owned = {s.id for s in await store.routable_services(deps.db, tenant_id)}
    # Patterns saved before rules were RE2 stay savable, so that the rules around them (and
    # their own removal, which saves the rest) can still be edited; new ones must be RE2.
    stored = _stored_patterns(await store.list_rules(deps.db, tenant_id))
    parsed: list[tuple[str, list[dict[str, Any]], tuple[UUID, ...]]] = []
    for index, body in enumerate(bodies):
        try:
            name, conditions, service_ids = parse_rule(body, stored)
        except InputError as exc:
            raise InputError(f"routes[{index}].{exc.field}".rstrip("."), exc.message) from exc
        unknown = [s for s in service_ids if s not in owned]
        if unknown:
            raise InputError(f"routes[{index}].service_ids", f"no such service: {unknown[0]}")
        parsed.append(
            (
                name,
                [{"field": c.field, "op": c.op, "value": c.value} for c in conditions],
                service_ids,
            )
        )
    async with deps.db.transaction():
        await store.replace_rules(deps.db, tenant_id, parsed)
        await insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor=actor,
            action="routes.changed",
            detail={"rules": [name for name, _, _ in parsed]},
        )


async def save_severity_map(
    deps: Deps, tenant_id: UUID, parsed: SeverityMap, *, actor: str
) -> None:
    async with deps.db.transaction():
        await store.set_severity_map(deps.db, tenant_id, severity_map_to_json(parsed))
        await insert_audit(
            deps.db, tenant_id=tenant_id, actor=actor, action="severity_map.changed", detail={}
        )


def parse_severity_lines(text: str, default: str) -> dict[str, Any]:
    """The settings form's table: one `name = severity` per line, blank lines ignored."""
    overrides: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, target = line.partition("=")
        if not sep:
            raise InputError(f"line {number}", "expected: name = critical|error|warning|info")
        overrides[name.strip()] = target.strip()
    return {"default": default or None, "overrides": overrides}
