"""Editing a tenant's routing rules and severity table: the admin API and the settings forms.

Both go through `save_rules`, which validates the whole ordered list (each rule with
`routing.parse_rule`, each service against the tenant's own) and replaces it in one
transaction, with an audit entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.deps import Deps
from app.errors import InputError, NotFoundError
from app.ingest import store
from app.ingest.routing import parse_rule, regex_problem
from app.ingest.severity import parse_severity_map, severity_map_to_json
from app.tenants.admin import admin_tenant
from app.tenants.store import insert_audit
from app.web.api import path_uuid, read_json_object
from app.web.pages import flash, redirect
from app.web.session import check_csrf, current_tenant_id

OPS = ("equals", "regex", "exists")


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


async def get_routes(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    rules = await store.list_rules(deps.db, tenant_id)
    return JSONResponse({"routes": [rule_json(r) for r in rules]})


async def put_routes(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    body = await read_json_object(request)
    routes = body.get("routes")
    if not isinstance(routes, list):
        raise InputError("routes", "must be a list of rules")
    await save_rules(deps, tenant_id, routes, actor="operator")
    rules = await store.list_rules(deps.db, tenant_id)
    return JSONResponse({"routes": [rule_json(r) for r in rules]})


async def get_severity_map(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    stored = parse_severity_map(await store.severity_map(deps.db, tenant_id))
    return JSONResponse(severity_map_to_json(stored))


async def put_severity_map(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    tenant_id = tenant.id
    parsed = parse_severity_map(await read_json_object(request))
    async with deps.db.transaction():
        await store.set_severity_map(deps.db, tenant_id, severity_map_to_json(parsed))
        await insert_audit(
            deps.db, tenant_id=tenant_id, actor="operator", action="severity_map.changed", detail={}
        )
    return JSONResponse(severity_map_to_json(parsed))


# Config page forms: each edits the stored list and saves it whole.


async def _form_rules(request: Request) -> tuple[Deps, UUID, list[dict[str, Any]], dict[str, Any]]:
    from app.web.api import get_deps

    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        fields: dict[str, Any] = {k: form.getlist(k) for k in form}
    rules = [
        {"name": r.name, "conditions": r.conditions, "service_ids": [str(s) for s in r.service_ids]}
        for r in await store.list_rules(deps.db, tenant_id)
    ]
    return deps, tenant_id, rules, fields


def _first(fields: dict[str, Any], name: str) -> str:
    values = fields.get(name) or [""]
    return str(values[0]).strip()


async def add_rule(request: Request) -> Response:
    deps, tenant_id, rules, fields = await _form_rules(request)
    condition_field = _first(fields, "field")
    conditions = []
    if condition_field:
        op = _first(fields, "op")
        conditions.append(
            {
                "field": condition_field,
                "op": op,
                "value": None if op == "exists" else _first(fields, "value"),
            }
        )
    rules.append(
        {
            "name": _first(fields, "name"),
            "conditions": conditions,
            "service_ids": [str(v) for v in fields.get("service_ids", [])],
        }
    )
    return await _save_from_form(request, deps, tenant_id, rules, "Rule added.")


async def _save_from_form(
    request: Request, deps: Deps, tenant_id: UUID, rules: list[dict[str, Any]], done: str
) -> Response:
    try:
        await save_rules(deps, tenant_id, rules, actor="tenant admin")
    except InputError as exc:
        flash(request, "error", f"The rules were not saved: {exc}")
        return redirect("/settings#routing")
    flash(request, "ok", done)
    return redirect("/settings#routing")


async def _rule_index(request: Request, deps: Deps, tenant_id: UUID) -> int:
    rule_id = path_uuid(request, "rule_id", "rule")
    stored = await store.list_rules(deps.db, tenant_id)
    for index, rule in enumerate(stored):
        if rule.id == rule_id:
            return index
    raise NotFoundError("rule")


async def delete_rule(request: Request) -> Response:
    deps, tenant_id, rules, _ = await _form_rules(request)
    index = await _rule_index(request, deps, tenant_id)
    del rules[index]
    return await _save_from_form(request, deps, tenant_id, rules, "Rule removed.")


async def move_rule_up(request: Request) -> Response:
    deps, tenant_id, rules, _ = await _form_rules(request)
    index = await _rule_index(request, deps, tenant_id)
    if index > 0:
        rules[index - 1], rules[index] = rules[index], rules[index - 1]
    return await _save_from_form(request, deps, tenant_id, rules, "Rule moved up.")


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


async def save_severity_form(request: Request) -> Response:
    deps, tenant_id, _, fields = await _form_rules(request)
    try:
        parsed = parse_severity_map(
            parse_severity_lines(_first(fields, "table"), _first(fields, "default"))
        )
    except InputError as exc:
        flash(request, "error", f"The severity table was not saved: {exc}")
        return redirect("/settings#severity")
    async with deps.db.transaction():
        await store.set_severity_map(deps.db, tenant_id, severity_map_to_json(parsed))
        await insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor="tenant admin",
            action="severity_map.changed",
            detail={},
        )
    flash(request, "ok", "Severity table saved.")
    return redirect("/settings#severity")


routes = [
    Route("/settings/severity", save_severity_form, methods=["POST"]),
    Route("/admin/v1/tenants/{tenant_id}/routes", get_routes, methods=["GET"]),
    Route("/admin/v1/tenants/{tenant_id}/routes", put_routes, methods=["PUT"]),
    Route("/admin/v1/tenants/{tenant_id}/severity-map", get_severity_map, methods=["GET"]),
    Route("/admin/v1/tenants/{tenant_id}/severity-map", put_severity_map, methods=["PUT"]),
    Route("/settings/routes", add_rule, methods=["POST"]),
    Route("/settings/routes/{rule_id}/delete", delete_rule, methods=["POST"]),
    Route("/settings/routes/{rule_id}/up", move_rule_up, methods=["POST"]),
]
