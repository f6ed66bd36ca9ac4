"""The tenant's view of deliveries on the settings side: the history of every event
(`GET /settings/deliveries`: an alert's events together, filters and pages in the query string,
so a link can be shared), an event's page with what was sent, every attempt and PagerDuty's
answers and why it waits, and the "Send test event" button of each service. Works without
JavaScript."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.dispatch import log_store
from app.dispatch.log_store import HISTORY_STATUSES, AlertGroup, Delivery, HistoryFilter
from app.errors import InputError, NotFoundError
from app.ingest.alert import Alert
from app.ingest.intake import accept
from app.installations.store import PdService, list_services
from app.outbox import events
from app.outbox.states import ON_ITS_WAY
from app.settings.delivery_words import (
    KIND_WORDS,
    OUTCOME_WORDS,
    Words,
    incident_words,
    sent_body,
    severity_mapping,
    status_words,
    wait_reason,
)
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

HISTORY_PAGE_SIZE = 50
TEXT_MAX_LENGTH = 200
# Seqs are bigints: a larger cursor could not be the query's parameter.
CURSOR_MAX = 2**62
STATUS_CHOICES = {
    "delivered": "Delivered",
    "waiting": "Waiting or sending",
    "held": "Held",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "skipped": "Not sent: nothing to resolve",
}
assert set(STATUS_CHOICES) == set(HISTORY_STATUSES)
# While an event is on its way, its page reloads itself (a meta refresh: no script needed).
REFRESH_SECONDS = 2
# A test event pages someone for real: its resolve follows after this long (long enough to see
# the incident open in PagerDuty), unless the admin resolves it at once.
TEST_EVENT_RESOLVES_AFTER = timedelta(seconds=60)


def history_kept(retention_days: int) -> str:
    """How far back the delivery history goes (PDCONNECT_RETENTION_DAYS), said where it is
    shown: the settings page's deliveries and each event's page."""
    if retention_days <= 0:
        return "History is kept indefinitely."
    days = "1 day" if retention_days == 1 else f"{retention_days} days"
    return (
        f"History is kept for {days}: an event and its delivery attempts are removed {days} "
        "after they finish (events still on their way or held are kept)."
    )


def count_words(total: int, exact: bool) -> str:
    """ "1 006 deliveries", "more than 100 000 deliveries": digits grouped by a narrow
    no-break space, as the number is read."""
    number = f"{total:,}".replace(",", "\u202f")
    noun = "delivery" if total == 1 and exact else "deliveries"
    return f"{number} {noun}" if exact else f"more than {number} {noun}"


@dataclass(frozen=True)
class Filters:
    """The history's query string, as typed (shown back in the form) and as understood."""

    status: str
    service: str
    text: str
    where: HistoryFilter
    before: int | None
    after: int | None
    # Field name to message, for what could not be understood (and was left out).
    errors: dict[str, str]

    def href(self, **cursor: int | None) -> str | None:
        """A link to the history with these filters (those understood) and this cursor; None
        for a cursor that is None (no such page)."""
        if any(value is None for value in cursor.values()):
            return None
        kept = {
            "status": self.where.status,
            "service": self.where.service_id,
            "q": self.where.text,
            **cursor,
        }
        query = urlencode({k: v for k, v in kept.items() if v is not None})
        return f"/settings/deliveries?{query}" if query else "/settings/deliveries"


def _cursor(raw: str | None, name: str, errors: dict[str, str]) -> int | None:
    if raw is None or raw == "":
        return None
    if raw.isdigit() and int(raw) <= CURSOR_MAX:
        return int(raw)
    errors["page"] = f"The page asked for ({name}={raw[:40]}) is not one of this history's."
    return None


def read_filters(request: Request, services: list[PdService]) -> Filters:
    params = request.query_params
    errors: dict[str, str] = {}
    status = params.get("status", "").strip()
    if status and status not in STATUS_CHOICES:
        errors["status"] = f"Pick a status from the list ({status[:40]!r} is not one of them)."
    service = params.get("service", "").strip()
    service_id: UUID | None = None
    if service:
        owned = {str(s.id): s.id for s in services}
        service_id = owned.get(service)
        if service_id is None:
            errors["service"] = "Pick a service from the list: that one is not connected."
    text = params.get("q", "").strip()
    if len(text) > TEXT_MAX_LENGTH:
        errors["q"] = f"Search for at most {TEXT_MAX_LENGTH} characters."
    elif "\x00" in text:
        errors["q"] = "The search text holds a character that cannot be searched for."
    before = _cursor(params.get("before"), "before", errors)
    after = _cursor(params.get("after"), "after", errors)
    return Filters(
        status=status,
        service=service,
        text=text,
        where=HistoryFilter(
            status=status if status in STATUS_CHOICES else None,
            service_id=service_id,
            text=text if text and "q" not in errors else None,
        ),
        before=before,
        after=None if before is not None else after,
        errors=errors,
    )


@dataclass(frozen=True)
class Row:
    delivery: Delivery
    words: Words
    kind: str


@dataclass(frozen=True)
class AlertView:
    """One alert of the history, as its rows show it."""

    group: AlertGroup
    rows: list[Row]
    summary: str
    severity: str | None
    severity_from: str | None
    incident: str | None
    dedup_key: str | None


def alert_view(group: AlertGroup, now: datetime) -> AlertView:
    deliveries = group.deliveries
    summary = next((d.summary for d in reversed(deliveries) if d.summary), None)
    with_severity = next((d for d in deliveries if d.severity), None)
    severity, severity_from = (
        severity_mapping(with_severity) if with_severity is not None else (None, None)
    )
    states = [d.event for d in deliveries if d.event.incident_changed_at is not None]
    latest_state = max(states, key=lambda e: e.incident_changed_at or now, default=None)
    return AlertView(
        group=group,
        rows=[
            Row(d, status_words(d, now), KIND_WORDS.get(d.event.kind, d.event.kind))
            for d in deliveries
        ],
        summary=summary or _no_summary(group),
        severity=severity,
        severity_from=severity_from,
        incident=incident_words(latest_state) if latest_state is not None else None,
        dedup_key=group.latest.event.dedup_key,
    )


def _no_summary(group: AlertGroup) -> str:
    kind = group.latest.event.kind
    if group.latest.event.status == "skipped":
        return f"{KIND_WORDS.get(kind, kind)} of an alert pdconnect never sent"
    return f"{KIND_WORDS.get(kind, kind)} without a summary"


async def history_page(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    services = await list_services(deps.db, tenant_id)
    filters = read_filters(request, services)
    found = await log_store.history(
        deps.db,
        tenant_id,
        filters.where,
        before=filters.before,
        after=filters.after,
        page_size=HISTORY_PAGE_SIZE,
    )
    now = deps.clock()
    paged = filters.before is not None or filters.after is not None
    return render(
        request,
        "deliveries.html",
        {
            "filters": filters,
            "services": services,
            "status_choices": STATUS_CHOICES,
            "text_max": TEXT_MAX_LENGTH,
            "alerts": [alert_view(g, now) for g in found.groups],
            "total": count_words(found.total, found.total_exact),
            "total_number": found.total,
            "newest": filters.href() if paged else None,
            "newer": filters.href(after=found.newer_after),
            "older": filters.href(before=found.older_before),
            # The oldest page: the one after nothing. Not offered from there.
            "oldest": filters.href(after=0) if found.older_before is not None else None,
            "history": history_kept(deps.config.retention_days),
            "now": now,
        },
        # A filter that could not be understood is left out, and said so beside it.
        status_code=400 if filters.errors else 200,
    )


async def event_page(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    delivery = await log_store.get_delivery(
        deps.db, tenant_id, path_uuid(request, "event_id", "event")
    )
    if delivery is None:
        raise NotFoundError("event")
    event = delivery.event
    attempts = await log_store.list_attempts(deps.db, event.id)
    # The other events of the same alert: a test event's page shows its resolve on the way.
    alert_events = (
        await log_store.list_events(deps.db, tenant_id, alert_id=event.alert_id, limit=50)
        if event.alert_id is not None
        else []
    )
    on_its_way = event.status in ON_ITS_WAY or any(e.status in ON_ITS_WAY for e in alert_events)
    budget = await log_store.key_budget(deps.db, event) if event.status in ON_ITS_WAY else None
    now = deps.clock()
    severity, severity_from = severity_mapping(delivery)
    return render(
        request,
        "event.html",
        {
            "event": event,
            "delivery": delivery,
            "words": status_words(delivery, now),
            "waits": wait_reason(delivery, budget, attempts, now),
            "kind": KIND_WORDS.get(event.kind, event.kind),
            "severity": severity,
            "severity_from": severity_from,
            "incident": incident_words(event),
            "sent": sent_body(event),
            "attempts": attempts,
            "outcome_words": OUTCOME_WORDS,
            "now": now,
            "alert_events": list(reversed(alert_events)) if len(alert_events) > 1 else [],
            "refresh": REFRESH_SECONDS if on_its_way else None,
            "history": history_kept(deps.config.retention_days),
        },
    )


async def send_test_event(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    service_id = path_uuid(request, "service_id", "service")
    async with request.form() as form:
        check_csrf(request, form)
    dedup_key = f"pdconnect-test-{uuid.uuid4().hex[:12]}"
    trigger = Alert(
        status="firing",
        dedup_key=dedup_key,
        summary="Test event from pdconnect: this service is connected",
        severity="info",
        source="pdconnect",
        details={
            "sent_from": "pdconnect settings page",
            "resolves_after_seconds": int(TEST_EVENT_RESOLVES_AFTER.total_seconds()),
        },
        service=str(service_id),
    )
    resolve = Alert(status="resolved", dedup_key=dedup_key, service=str(service_id))
    try:
        # One commit for both: a test event is never left without its resolve.
        accepted, _ = await accept(
            deps,
            tenant_id,
            [trigger, resolve],
            source="test",
            due_in=[None, TEST_EVENT_RESOLVES_AFTER],
        )
    except InputError as exc:
        # An unknown service (or another tenant's) reads as not found.
        raise NotFoundError("service") from exc
    name = accepted.service.name if accepted.service is not None else "the service"
    seconds = int(TEST_EVENT_RESOLVES_AFTER.total_seconds())
    flash(
        request,
        "ok",
        f"Test event queued for {name}. It resolves itself in {seconds} seconds; "
        "resolve it now below if you have seen enough.",
    )
    return redirect(f"/settings/events/{accepted.id}")


async def send_now(request: Request) -> Response:
    """A queued event held back on purpose (a test event's resolve) goes at once."""
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    event_id = path_uuid(request, "event_id", "event")
    async with request.form() as form:
        check_csrf(request, form)
        back = str(form.get("back") or event_id)
    if not await events.send_now(deps.db, tenant_id, event_id):
        flash(request, "error", "That event is no longer waiting: it has been sent already.")
    else:
        flash(request, "ok", "Sending the resolve now.")
    try:
        back_id = uuid.UUID(back)
    except ValueError:
        back_id = event_id
    return redirect(f"/settings/events/{back_id}")


routes = [
    page("/settings/deliveries", history_page, methods=["GET"]),
    page("/settings/events/{event_id}", event_page, methods=["GET"]),
    page("/settings/services/{service_id}/test", send_test_event, methods=["POST"]),
    page("/settings/events/{event_id}/send-now", send_now, methods=["POST"]),
]
