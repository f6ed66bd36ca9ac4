"""A tenant's routing rules and severity table, edited as a whole: the admin API and the
settings forms both save through here.

`save_rules` validates the whole ordered list (each rule with `routing.parse_rule`, each
service against the tenant's own) and replaces it in one transaction, with an audit entry;
`save_severity_map` does the same for the severity table. A rule's templates are parsed at save
(an error names the rule, the template and the problem) and can be previewed against the
tenant's most recent alert (`preview`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from app.deps import Deps
from app.errors import InputError
from app.ingest import store
from app.ingest.alert import Alert
from app.ingest.routing import parse_action, parse_rule, regex_problem
from app.ingest.severity import SeverityMap, severity_map_to_json
from app.ingest.templates import (
    Placeholder,
    Shaping,
    Template,
    parse_shaping,
    render,
    shape,
    shaping_json,
)
from app.tenants.store import insert_audit


def rule_json(rule: store.StoredRule) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        "name": rule.name,
        "conditions": rule.conditions,
        "service_ids": [str(s) for s in rule.service_ids],
        "action": rule.action,
        "templates": rule.templates,
        "problems": rule_problems(rule),
    }


UNMATCHED = ("refuse", "suppress")


def parse_unmatched(value: object) -> str:
    if value not in UNMATCHED:
        raise InputError(
            "unmatched",
            "refuse (422 for an alert no rule matches) or suppress (accept it, page nobody)",
        )
    return str(value)


async def save_unmatched(deps: Deps, tenant_id: UUID, value: str, *, actor: str) -> None:
    async with deps.db.transaction():
        await store.set_unmatched_policy(deps.db, tenant_id, value)
        await insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor=actor,
            action="routes.unmatched_changed",
            detail={"unmatched": value},
        )


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
    parsed: list[store.NewRule] = []
    for index, body in enumerate(bodies):
        try:
            name, conditions, service_ids = parse_rule(body, stored)
            assert isinstance(body, dict)
            action = parse_action(body)
            shaping = parse_shaping(body.get("templates"))
        except InputError as exc:
            raise InputError(f"routes[{index}].{exc.field}".rstrip("."), exc.message) from exc
        unknown = [s for s in service_ids if s not in owned]
        if unknown:
            raise InputError(f"routes[{index}].service_ids", f"no such service: {unknown[0]}")
        parsed.append(
            store.NewRule(
                name=name,
                conditions=[{"field": c.field, "op": c.op, "value": c.value} for c in conditions],
                service_ids=service_ids,
                action=action,
                templates=shaping_json(shaping),
            )
        )
    async with deps.db.transaction():
        await store.replace_rules(deps.db, tenant_id, parsed)
        await insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor=actor,
            action="routes.changed",
            detail={"rules": [rule.name for rule in parsed]},
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


def alert_from_body(body: dict[str, Any]) -> Alert:
    """A recent trigger as the outbox keeps it (an Events API body), back as an alert: what a
    template preview renders against. Labels come back from `custom_details.labels`."""
    payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    details = payload.get("custom_details", body.get("details"))
    details = dict(details) if isinstance(details, dict) else {}
    labels = details.pop("labels", {})
    labels = (
        {k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {}
    )

    def text(name: str) -> str | None:
        value = payload.get(name, body.get(name))
        return value if isinstance(value, str) else None

    return Alert(
        status="firing",
        dedup_key=text("dedup_key") or text("incident_key"),
        summary=text("summary") or text("description"),
        severity=text("severity"),
        source=text("source"),
        component=text("component"),
        group=text("group"),
        class_=text("class"),
        labels=labels,
        details=details,
    )


def preview(shaping: Shaping | None, alert: Alert) -> dict[str, Any]:
    """What the templates make of `alert`, and the placeholders it has no value for (they
    render empty, or their default)."""
    if shaping is None:
        return {"rendered": {}, "warnings": []}
    shaped = shape(alert, shaping)
    rendered: dict[str, Any] = {name: render(t, alert) for name, t in shaping.fields.items()}
    if shaping.details:
        rendered["custom_details"] = {n: render(t, alert) for n, t in shaping.details.items()}
    if shaping.links:
        rendered["links"] = [
            {"href": link.href, **({"text": link.text} if link.text else {})}
            for link in shaped.links[len(alert.links) :]
        ]
    warnings = []
    templates = [*shaping.fields.values(), *shaping.details.values()]
    templates += [t for pair in shaping.links for t in pair if t is not None]
    missing: list[str] = []
    for template in templates:
        for part in template.parts:
            if (
                isinstance(part, Placeholder)
                and not any(f.name == "default" for f in part.filters)
                and not render(Template("", (part,)), alert)
            ):
                name = ".".join(part.path)
                if name not in missing:
                    missing.append(name)
    for name in missing:
        warnings.append(f'{name} has no value in this alert and renders empty; add | default:"…"')
    return {"rendered": rendered, "warnings": warnings}


async def recent_alert(deps: Deps, tenant_id: UUID) -> Alert | None:
    body = await store.recent_trigger_body(deps.db, tenant_id)
    return None if body is None else alert_from_body(body)
