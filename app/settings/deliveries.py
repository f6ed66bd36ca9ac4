"""The tenant's view of deliveries on the settings side: an event's page with every attempt
and PagerDuty's answers, and the "Send test event" button of each service."""

from __future__ import annotations

import uuid
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from app.dispatch import log_store
from app.errors import InputError, NotFoundError
from app.ingest.alert import Alert
from app.ingest.intake import accept
from app.outbox import events
from app.outbox.states import ON_ITS_WAY
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

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


async def event_page(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    event = await log_store.get_event(deps.db, tenant_id, path_uuid(request, "event_id", "event"))
    if event is None:
        raise NotFoundError("event")
    attempts = await log_store.list_attempts(deps.db, event.id)
    # The other events of the same alert: a test event's page shows its resolve on the way.
    alert_events = (
        await log_store.list_events(deps.db, tenant_id, alert_id=event.alert_id, limit=50)
        if event.alert_id is not None
        else []
    )
    on_its_way = event.status in ON_ITS_WAY or any(e.status in ON_ITS_WAY for e in alert_events)
    return render(
        request,
        "event.html",
        {
            "event": event,
            "attempts": attempts,
            "now": deps.clock(),
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
    page("/settings/events/{event_id}", event_page, methods=["GET"]),
    page("/settings/services/{service_id}/test", send_test_event, methods=["POST"]),
    page("/settings/events/{event_id}/send-now", send_now, methods=["POST"]),
]
