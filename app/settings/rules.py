"""The settings page's forms for routing rules and the severity table: each edits the
stored list and saves it whole (app/ingest/rulebook.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.errors import InputError, NotFoundError
from app.ingest import store
from app.ingest.rulebook import parse_severity_lines, save_rules, save_severity_map
from app.ingest.severity import parse_severity_map
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id


async def _form_rules(request: Request) -> tuple[Deps, UUID, list[dict[str, Any]], dict[str, Any]]:
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


async def save_severity_form(request: Request) -> Response:
    deps, tenant_id, _, fields = await _form_rules(request)
    try:
        parsed = parse_severity_map(
            parse_severity_lines(_first(fields, "table"), _first(fields, "default"))
        )
    except InputError as exc:
        flash(request, "error", f"The severity table was not saved: {exc}")
        return redirect("/settings#severity")
    await save_severity_map(deps, tenant_id, parsed, actor="tenant admin")
    flash(request, "ok", "Severity table saved.")
    return redirect("/settings#severity")


routes = [
    page("/settings/severity", save_severity_form, methods=["POST"]),
    page("/settings/routes", add_rule, methods=["POST"]),
    page("/settings/routes/{rule_id}/delete", delete_rule, methods=["POST"]),
    page("/settings/routes/{rule_id}/up", move_rule_up, methods=["POST"]),
]
