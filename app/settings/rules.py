"""`GET /settings/routing`: the routing rules and the severity table, and their forms. Each
form edits the stored list and saves it whole (app/ingest/rulebook.py); a refused one is shown
again, with what was typed and the problem beside its field, in words (app/settings/words.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.errors import InputError, NotFoundError
from app.ingest import store
from app.ingest.routing import regex_problem
from app.ingest.rulebook import (
    parse_severity_lines,
    preview,
    recent_alert,
    rule_problems,
    save_rules,
    save_severity_map,
    save_unmatched,
)
from app.ingest.severity import PD_SEVERITIES, parse_severity_map
from app.ingest.templates import parse_shaping
from app.installations import store as installations_store
from app.settings.frame import needs_first_rule, signed_in_tenant
from app.settings.words import FieldErrors, regex_words, rule_errors, severity_errors
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

ROUTING = "/settings/routing"
# The one-click first rule: a rule without conditions, last, so it catches what others leave.
CATCH_ALL_NAME = "Everything else"
OPS = {"equals": "equals", "regex": "matches regex", "exists": "exists"}


async def routing_view(
    request: Request,
    deps: Deps,
    *,
    rule_form: dict[str, Any] | None = None,
    severity_form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    tenant = await signed_in_tenant(request, deps)
    all_services = await installations_store.list_services(deps.db, tenant.id)
    rules = await store.list_rules(deps.db, tenant.id)
    severities = parse_severity_map(await store.severity_map(deps.db, tenant.id))
    if severity_form is None:
        table = "".join(f"{k} = {v}\n" for k, v in severities.overrides.items())
        severity_form = {"values": {"table": table, "default": severities.default}, "errors": {}}
    return render(
        request,
        "routing.html",
        {
            "tenant": tenant,
            "all_services": all_services,
            "service_names": {str(s.id): s.name for s in all_services},
            "rules": rules,
            # Regexes saved before rules were RE2 that RE2 refuses: each matches nothing.
            "rule_problems": {rule.id: rule_problems(rule) for rule in rules},
            "needs_rule": await needs_first_rule(deps, tenant.id, all_services),
            "unmatched": await store.unmatched_policy(deps.db, tenant.id),
            "pd_severities": PD_SEVERITIES,
            "ops": OPS,
            "rule_form": rule_form or {"values": {"op": "equals", "service_ids": []}, "errors": {}},
            "severity_form": severity_form,
            "message_places": ("rules", "add-rule", "severity", "first-rule"),
        },
        status_code=status_code,
    )


async def routing_page(request: Request) -> Response:
    return await routing_view(request, get_deps(request))


async def _form_rules(request: Request) -> tuple[Deps, UUID, list[dict[str, Any]], dict[str, Any]]:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        fields: dict[str, Any] = {k: form.getlist(k) for k in form}
    # Saved whole: each rule keeps its action and templates when another is added or moved.
    rules = [
        {
            "name": r.name,
            "conditions": r.conditions,
            "service_ids": [str(s) for s in r.service_ids],
            "action": r.action,
            "templates": r.templates,
        }
        for r in await store.list_rules(deps.db, tenant_id)
    ]
    return deps, tenant_id, rules, fields


def _first(fields: dict[str, Any], name: str) -> str:
    values = fields.get(name) or [""]
    return str(values[0]).strip()


def _checked_by_hand(values: dict[str, Any]) -> FieldErrors:
    """What the form can tell before the rulebook looks: said as the form's own words."""
    errors: FieldErrors = {}
    if not values["name"]:
        errors["name"] = "Give the rule a name."
    if values["field"] and values["op"] != "exists" and not values["value"]:
        errors["value"] = "Type the value to compare with, or choose “exists”."
    elif values["field"] and values["op"] == "regex":
        # Said together with the other problems, not one form post later.
        problem = regex_problem(values["value"])
        if problem is not None:
            errors["value"] = regex_words(problem)
    if not values["service_ids"] and values.get("action") != "suppress":
        errors["service_ids"] = "Tick at least one service, or choose “Accept, don't page”."
    return errors


def _template_lines(text: str) -> dict[str, Any]:
    """The form's templates: one `field: template` per line (`custom_details.name: …` for a
    custom detail, `link: …` for a link)."""
    out: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, template = line.partition(":")
        name = name.strip()
        if not sep:
            raise InputError("templates", f"line {number}: expected field: template")
        if name.startswith("custom_details."):
            out.setdefault("custom_details", {})[name.split(".", 1)[1]] = template.strip()
        elif name == "link":
            out.setdefault("links", []).append({"href": template.strip()})
        else:
            out[name] = template.strip()
    return out


async def add_rule(request: Request) -> Response:
    deps, tenant_id, rules, fields = await _form_rules(request)
    values = {
        "name": _first(fields, "name"),
        "field": _first(fields, "field"),
        "op": _first(fields, "op") or "equals",
        "value": _first(fields, "value"),
        "service_ids": [str(v) for v in fields.get("service_ids", [])],
        "action": "suppress" if _first(fields, "action") == "suppress" else "page",
        "templates": _first(fields, "templates"),
    }
    conditions = []
    if values["field"]:
        op = values["op"]
        conditions.append(
            {
                "field": values["field"],
                "op": op,
                "value": None if op == "exists" else values["value"],
            }
        )
    errors = _checked_by_hand(values)
    shown = ""
    if not errors:
        try:
            templates = _template_lines(str(values["templates"]))
            rules.append(
                {
                    "name": values["name"],
                    "conditions": conditions,
                    "service_ids": values["service_ids"] if values["action"] == "page" else [],
                    "action": values["action"],
                    "templates": templates,
                }
            )
            await save_rules(deps, tenant_id, rules, actor="tenant admin")
            shown = await _preview_words(deps, tenant_id, templates)
        except InputError as exc:
            errors = {"templates": exc.message} if "templates" in exc.field else rule_errors(exc)
    if errors:
        form = {"values": values, "errors": errors}
        return await routing_view(request, deps, rule_form=form, status_code=422)
    # Where the admin is looking: beside the form (the redirect keeps its #add-rule).
    flash(request, "ok", f"Rule '{values['name']}' added.{shown}", near="add-rule")
    return redirect(f"{ROUTING}#add-rule")


async def _preview_words(deps: Deps, tenant_id: UUID, templates: dict[str, Any]) -> str:
    """The new rule's templates rendered against the tenant's most recent alert, in words."""
    if not templates:
        return ""
    alert = await recent_alert(deps, tenant_id)
    if alert is None:
        return " No alert yet to preview its templates against."
    shown = preview(parse_shaping(templates), alert)
    parts = [f"{k} = “{v}”" for k, v in shown["rendered"].items() if isinstance(v, str)]
    return " On the most recent alert: " + "; ".join(parts + shown["warnings"]) + "."


async def save_unmatched_form(request: Request) -> Response:
    deps, tenant_id, _, fields = await _form_rules(request)
    value = "suppress" if _first(fields, "unmatched") == "suppress" else "refuse"
    await save_unmatched(deps, tenant_id, value, actor="tenant admin")
    words = "accepted and not paged" if value == "suppress" else "refused (HTTP 422)"
    flash(request, "ok", f"Alerts no rule matches are now {words}.", near="rules")
    return redirect(ROUTING)


async def add_first_rule(request: Request) -> Response:
    """The one-click answer to "several services and no rule": everything to one service."""
    deps, tenant_id, rules, fields = await _form_rules(request)
    service_id = _first(fields, "service_id")
    back = _first(fields, "back")
    back = back if back in ("/settings", ROUTING) else ROUTING
    names = {str(s.id): s.name for s in await installations_store.list_services(deps.db, tenant_id)}
    if service_id not in names:
        flash(request, "error", "Choose one of your services for the rule.", near="first-rule")
        return redirect(back)
    rules.append({"name": CATCH_ALL_NAME, "conditions": [], "service_ids": [service_id]})
    try:
        await save_rules(deps, tenant_id, rules, actor="tenant admin")
    except InputError as exc:
        message = next(iter(rule_errors(exc).values()))
        flash(request, "error", message, near="first-rule")
        return redirect(back)
    flash(
        request,
        "ok",
        f"Rule '{CATCH_ALL_NAME}' added: alerts no other rule takes go to {names[service_id]}.",
        near="rules" if back == ROUTING else None,
    )
    return redirect(back)


async def _saved(
    request: Request, deps: Deps, tenant_id: UUID, rules: list[dict[str, Any]], done: str
) -> Response:
    """Removing and moving rules: the rest of the list is saved as it was, so a refusal is
    rare (a rule saved before a limit was lowered) and said above the rules."""
    try:
        await save_rules(deps, tenant_id, rules, actor="tenant admin")
    except InputError as exc:
        message = next(iter(rule_errors(exc).values()))
        flash(request, "error", f"The rules were not saved: {message}", near="rules")
        return redirect(ROUTING)
    flash(request, "ok", done, near="rules")
    return redirect(ROUTING)


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
    name = rules[index]["name"]
    del rules[index]
    return await _saved(request, deps, tenant_id, rules, f"Rule '{name}' removed.")


async def move_rule_up(request: Request) -> Response:
    deps, tenant_id, rules, _ = await _form_rules(request)
    index = await _rule_index(request, deps, tenant_id)
    name = rules[index]["name"]
    if index > 0:
        rules[index - 1], rules[index] = rules[index], rules[index - 1]
    return await _saved(request, deps, tenant_id, rules, f"Rule '{name}' moved up.")


async def save_severity_form(request: Request) -> Response:
    deps, tenant_id, _, fields = await _form_rules(request)
    values = {"table": _first(fields, "table"), "default": _first(fields, "default")}
    try:
        parsed = parse_severity_map(parse_severity_lines(values["table"], values["default"]))
    except InputError as exc:
        form = {"values": values, "errors": severity_errors(exc)}
        return await routing_view(request, deps, severity_form=form, status_code=422)
    await save_severity_map(deps, tenant_id, parsed, actor="tenant admin")
    flash(request, "ok", "Severity table saved.", near="severity")
    return redirect(f"{ROUTING}#severity")


routes = [
    page(ROUTING, routing_page, methods=["GET"]),
    page("/settings/severity", save_severity_form, methods=["POST"]),
    page("/settings/routes", add_rule, methods=["POST"]),
    page("/settings/routing/unmatched", save_unmatched_form, methods=["POST"]),
    page("/settings/routes/first", add_first_rule, methods=["POST"]),
    page("/settings/routes/{rule_id}/delete", delete_rule, methods=["POST"]),
    page("/settings/routes/{rule_id}/up", move_rule_up, methods=["POST"]),
]
