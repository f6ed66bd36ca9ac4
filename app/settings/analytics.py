"""`GET /settings/analytics`: how paging goes for the signed-in tenant, over the last day, week
or month (links switch, no script needed): alerts and incidents per hour or day and time to
page as SVG bar charts, each with a table of the same figures; MTTA, MTTR and noise per
service; busiest sources; the acknowledge and resolve targets per severity (a form) and the
alerts that missed them. `GET /settings/analytics.json` gives the same figures as the admin
API. app/analytics computes everything."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.analytics.charts import bar_chart, duration, page_histogram
from app.analytics.figures import Analytics, analytics, analytics_json
from app.analytics.store import SEVERITIES, Target
from app.analytics.targets import TARGET_MAX_SECONDS, save_targets
from app.analytics.windows import WINDOWS, Window, parse_window
from app.deps import Deps
from app.settings.frame import signed_in_tenant
from app.web.api import get_deps
from app.web.render import flash, redirect, render
from app.web.routing import api, page
from app.web.session import check_csrf, current_tenant_id

ANALYTICS = "/settings/analytics"
TARGET_MAX_MINUTES = TARGET_MAX_SECONDS // 60
KINDS = ("acknowledge", "resolve")
WINDOW_NAMES = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}


def _bar_label(found: Analytics, index: int) -> str:
    at = found.bars[index].at
    # Short enough that a phone fits eight of them under a chart; the table says more.
    return at.strftime("%H:%M") if found.window.unit == "hour" else at.strftime("%-d %b")


def _minutes(seconds: int | None) -> str:
    return "" if seconds is None else f"{seconds / 60:g}"


async def analytics_view(
    request: Request,
    deps: Deps,
    window: Window,
    *,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    tenant = await signed_in_tenant(request, deps)
    found = await analytics(deps.db, tenant.id, window)
    bars = [(_bar_label(found, i), bar.alerts) for i, bar in enumerate(found.bars)]
    values = {
        f"{kind}_{severity}": _minutes(getattr(found.targets[severity], f"{kind}_seconds"))
        for severity in found.targets
        for kind in KINDS
    }
    return render(
        request,
        "analytics.html",
        {
            "tenant": tenant,
            "found": found,
            "windows": [(name, WINDOW_NAMES[name]) for name in WINDOWS],
            "window_name": WINDOW_NAMES[window.name],
            "alerts_chart": bar_chart(bars),
            "page_chart": bar_chart(page_histogram(found.page_buckets), labels_shown=6),
            "duration": duration,
            "severities": SEVERITIES,
            "form": form or {"values": values, "errors": {}},
            "max_minutes": TARGET_MAX_MINUTES,
            "message_places": ("targets",),
        },
        status_code=status_code,
    )


async def analytics_page(request: Request) -> Response:
    return await analytics_view(
        request, get_deps(request), parse_window(request.query_params.get("window"))
    )


async def analytics_data(request: Request) -> Response:
    deps = get_deps(request)
    window = parse_window(request.query_params.get("window"))
    tenant = await signed_in_tenant(request, deps)
    return JSONResponse(analytics_json(await analytics(deps.db, tenant.id, window)))


def _target_minutes(raw: str) -> int | str | None:
    """Minutes as typed: None when empty, else the number, else the problem in words."""
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= TARGET_MAX_MINUTES:
        return f"A whole number of minutes from 1 to {TARGET_MAX_MINUTES} (30 days), or empty."
    return int(raw)


async def save_targets_form(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        values = {
            f"{kind}_{severity}": str(form.get(f"{kind}_{severity}") or "").strip()
            for severity in SEVERITIES
            for kind in KINDS
        }
        window = parse_window(str(form.get("window") or "") or None)
    parsed = {name: _target_minutes(raw) for name, raw in values.items()}
    errors = {name: value for name, value in parsed.items() if isinstance(value, str)}
    if errors:
        refused = {"values": values, "errors": errors}
        return await analytics_view(request, deps, window, form=refused, status_code=422)

    def seconds(name: str) -> int | None:
        value = parsed[name]
        return value * 60 if isinstance(value, int) else None

    targets = [
        Target(severity, seconds(f"acknowledge_{severity}"), seconds(f"resolve_{severity}"))
        for severity in SEVERITIES
    ]
    await save_targets(deps.db, tenant_id, targets, actor="tenant admin")
    flash(request, "ok", "Targets saved.", near="targets")
    return redirect(f"{ANALYTICS}?window={window.name}#targets")


routes = [
    page(ANALYTICS, analytics_page, methods=["GET"]),
    api(f"{ANALYTICS}.json", analytics_data, methods=["GET"]),
    page(f"{ANALYTICS}/targets", save_targets_form, methods=["POST"]),
]
