"""`GET /settings/maintenance`: the tenant's maintenance windows (on now, next, what happens to
held alerts at the end), a form to add one or edit one (`/settings/maintenance/{id}`), and
ending one early or removing it. app/ingest/maintenance.py does the work; a refused form comes
back with what was typed and the problem beside its field, in the form's own words.

The form's times are wall-clock times in the chosen time zone (what a person types), turned
into RFC 3339 here; a weekly window keeps those wall-clock times across DST."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.errors import InputError, NotFoundError
from app.ingest import maintenance
from app.ingest.routing import CONDITIONS_MAX
from app.ingest.windows import Window, window_json
from app.installations import store as installations_store
from app.settings.frame import signed_in_tenant
from app.settings.rules import OPS
from app.settings.words import WHOLE_FORM, FieldErrors, regex_words
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

MAINTENANCE = "/settings/maintenance"
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
_CONDITION = re.compile(r"^conditions\[(?P<index>\d+)\](?:\.(?P<part>field|op|value))?$")
_TIME_WORDS = {
    "starts_at": "Choose the date and time it starts.",
    "ends_at": "Choose the date and time it ends.",
    "recurs_until": "Choose a date and time, or leave it empty to repeat for ever.",
}


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The zones the form offers: UTC first, then every IANA zone by name."""
    return ("UTC", *sorted(z for z in available_timezones() if z != "UTC" and "/" in z))


def _local(value: str | None, zone: str) -> str:
    """An RFC 3339 time as the form shows it: wall-clock time in `zone`."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(ZoneInfo(zone)).strftime(LOCAL_FORMAT)


def _when(window: dict[str, Any]) -> str:
    """The window's times in words, in its own time zone."""
    zone = window["time_zone"]
    start, end = _local(window["starts_at"], zone), _local(window["ends_at"], zone)
    end_words = end[11:] if end[:10] == start[:10] else end.replace("T", " ")
    words = f"{start.replace('T', ' ')} to {end_words} ({zone})"
    if window["recurrence"] == "weekly":
        words += ", every week"
        if window["recurs_until"]:
            words += f" until {_local(window['recurs_until'], zone).replace('T', ' ')}"
    return words


def _blank_form() -> dict[str, Any]:
    values = {"time_zone": "UTC", "recurrence": "once", "on_end": "drop", "service_ids": []}
    return {"values": {**values, "conditions": []}, "errors": {}}


def _window_form(window: Window) -> dict[str, Any]:
    shown = window_json(window, window.starts_at)
    zone = window.time_zone
    values = {
        "name": window.name,
        "starts_at": _local(shown["starts_at"], zone),
        "ends_at": _local(shown["ends_at"], zone),
        "recurs_until": _local(shown["recurs_until"], zone),
        "time_zone": zone,
        "recurrence": window.recurrence,
        "on_end": window.on_end,
        "service_ids": shown["service_ids"],
        "conditions": [
            {"field": c["field"], "op": c["op"], "value": c["value"] or ""}
            for c in shown["conditions"]
        ],
    }
    return {"values": values, "errors": {}}


async def maintenance_view(
    request: Request,
    deps: Deps,
    *,
    form: dict[str, Any] | None = None,
    editing: Window | None = None,
    status_code: int = 200,
) -> Response:
    tenant = await signed_in_tenant(request, deps)
    now = deps.clock()
    windows = [window_json(w, now) for w in await maintenance.list_windows(deps, tenant.id)]
    services = await installations_store.list_services(deps.db, tenant.id)
    form = form or (_window_form(editing) if editing else _blank_form())
    rows = list(form["values"]["conditions"])
    if len(rows) < CONDITIONS_MAX:
        # One empty row to add a condition with (a second post adds another).
        rows.append({"field": "", "op": "equals", "value": ""})
    zones = time_zones()
    chosen = form["values"].get("time_zone") or "UTC"
    return render(
        request,
        "maintenance.html",
        {
            "tenant": tenant,
            "windows": [
                {**w, "when": _when(w), "until": _local(w["current_ends_at"], w["time_zone"])}
                for w in windows
            ],
            "service_names": {str(s.id): s.name for s in services},
            "all_services": services,
            "form": form,
            "condition_rows": rows,
            "ops": OPS,
            "editing": editing,
            "time_zones": zones if chosen in zones else (chosen, *zones),
            "message_places": ("windows", "window-form"),
        },
        status_code=status_code,
    )


async def maintenance_page(request: Request) -> Response:
    return await maintenance_view(request, get_deps(request))


async def edit_page(request: Request) -> Response:
    deps = get_deps(request)
    window = await _window(request, deps)
    return await maintenance_view(request, deps, editing=window)


async def _window(request: Request, deps: Deps) -> Window:
    tenant_id = current_tenant_id(request)
    window_id = path_uuid(request, "window_id", "maintenance window")
    window = await maintenance.get_window(deps, tenant_id, window_id)
    if window is None:
        raise NotFoundError("maintenance window")
    return window


def _form_values(form: FormData) -> dict[str, Any]:
    def one(name: str) -> str:
        return str(form.get(name) or "").strip()

    fields, ops, texts = (form.getlist(n) for n in ("field", "op", "value"))
    conditions = [
        {"field": str(f).strip(), "op": str(o) or "equals", "value": str(v).strip()}
        for f, o, v in zip(fields, ops, texts, strict=False)
    ]
    return {
        **{n: one(n) for n in ("name", "starts_at", "ends_at", "recurs_until", "time_zone")},
        "recurrence": "weekly" if one("recurrence") == "weekly" else "once",
        "on_end": "send" if one("on_end") == "send" else "drop",
        "service_ids": [str(v) for v in form.getlist("service_ids")],
        # Rows left empty are dropped; the others keep their place for errors beside them.
        "conditions": [c for c in conditions if c["field"] or c["value"]][:CONDITIONS_MAX],
    }


def _body(values: dict[str, Any]) -> dict[str, Any]:
    zone = values["time_zone"] or "UTC"
    conditions = [
        {"field": c["field"], "op": c["op"], "value": None if c["op"] == "exists" else c["value"]}
        for c in values["conditions"]
    ]
    return {
        "name": values["name"] or None,
        "starts_at": _with_zone(values["starts_at"], zone),
        "ends_at": _with_zone(values["ends_at"], zone),
        "recurs_until": _with_zone(values["recurs_until"], zone),
        "recurrence": values["recurrence"],
        "time_zone": zone,
        "service_ids": values["service_ids"],
        "conditions": conditions,
        "on_end": values["on_end"],
    }


def _with_zone(value: str, zone: str) -> str | None:
    """A form's local time (`2030-01-31T02:00`) as an RFC 3339 time in `zone`."""
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
        if local.tzinfo is None:
            local = local.replace(tzinfo=ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError):
        return value
    return local.isoformat()


def _checked_by_hand(values: dict[str, Any]) -> FieldErrors:
    """What the form can tell before the window is parsed, all at once."""
    errors: FieldErrors = {}
    for name in ("starts_at", "ends_at"):
        if not values[name]:
            errors[name] = _TIME_WORDS[name]
    for index, c in enumerate(values["conditions"]):
        if not c["field"]:
            errors[f"condition-{index}-field"] = "Name the field to test, or clear the value."
        elif c["op"] != "exists" and not c["value"]:
            errors[f"condition-{index}-value"] = (
                "Type the value to compare with, or choose “exists”."
            )
    return errors


def _errors(exc: InputError) -> FieldErrors:
    """A refused window as the form's field and a sentence."""
    field, message = exc.field, exc.message
    found = _CONDITION.match(field)
    if found:
        where = f"condition-{found.group('index')}-{found.group('part') or 'field'}"
        if found.group("part") == "value" and not message.startswith(("at most", "required")):
            return {where: regex_words(message)}
        if found.group("part") in (None, "field"):
            return {
                where: "Alerts have no such field. Use labels.<name> (for example labels.env) "
                "or one of: severity, source, component, group, class, summary."
            }
        return {where: f"This condition {message}."}
    if field in _TIME_WORDS and message.startswith(("required", "not an RFC")):
        return {field: _TIME_WORDS[field]}
    if field == "ends_at" and message == "must be after starts_at":
        return {field: "It must end after it starts."}
    if field == "time_zone":
        return {field: "Choose a time zone from the list."}
    if field.startswith("service_ids"):
        return {"service_ids": "One of the ticked services is no longer connected. Reload."}
    if field in ("name", "ends_at", "recurs_until"):
        return {field: message[0].upper() + message[1:] + "."}
    return {WHOLE_FORM: f"The window was not saved: {message}."}


async def _save(request: Request, editing: UUID | None) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        values = _form_values(form)
    window = await _window(request, deps) if editing else None
    errors = _checked_by_hand(values)
    if not errors:
        try:
            body = _body(values)
            if editing is None:
                await maintenance.create_window(deps, tenant_id, body, actor="tenant admin")
            else:
                await maintenance.update_window(
                    deps, tenant_id, editing, body, actor="tenant admin", merge=False
                )
        except InputError as exc:
            errors = _errors(exc)
    if errors:
        shown = {"values": values, "errors": errors}
        return await maintenance_view(request, deps, form=shown, editing=window, status_code=422)
    name = values["name"] or "Maintenance"
    done = "saved" if editing else "added"
    flash(request, "ok", f"Maintenance window '{name}' {done}.", near="windows")
    return redirect(f"{MAINTENANCE}#windows")


async def add_window(request: Request) -> Response:
    return await _save(request, None)


async def change_window(request: Request) -> Response:
    return await _save(request, path_uuid(request, "window_id", "maintenance window"))


async def end_window(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
    window_id = path_uuid(request, "window_id", "maintenance window")
    if not await maintenance.end_window(deps, tenant_id, window_id, actor="tenant admin"):
        raise NotFoundError("maintenance window")
    flash(request, "ok", "Maintenance window ended.", near="windows")
    return redirect(MAINTENANCE)


async def delete_window(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
    window_id = path_uuid(request, "window_id", "maintenance window")
    if not await maintenance.delete_window(deps, tenant_id, window_id, actor="tenant admin"):
        raise NotFoundError("maintenance window")
    flash(request, "ok", "Maintenance window removed.", near="windows")
    return redirect(MAINTENANCE)


routes = [
    page(MAINTENANCE, maintenance_page, methods=["GET"]),
    page(MAINTENANCE, add_window, methods=["POST"]),
    page(MAINTENANCE + "/{window_id}", edit_page, methods=["GET"]),
    page(MAINTENANCE + "/{window_id}", change_window, methods=["POST"]),
    page(MAINTENANCE + "/{window_id}/end", end_window, methods=["POST"]),
    page(MAINTENANCE + "/{window_id}/delete", delete_window, methods=["POST"]),
]
