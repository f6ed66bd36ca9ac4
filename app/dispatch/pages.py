"""The tenant's view of deliveries on the settings side: an event's page with every attempt
and PagerDuty's answers, and the "Send test event" button of each service."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.dispatch import store
from app.errors import InputError, NotFoundError
from app.ingest.alert import Alert
from app.ingest.intake import accept
from app.web.api import get_deps, path_uuid
from app.web.pages import flash, redirect, render
from app.web.session import check_csrf, current_tenant_id

# While an event is on its way, its page reloads itself (a meta refresh: no script needed).
REFRESH_SECONDS = 2


async def event_page(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    event = await store.get_event(deps.db, tenant_id, path_uuid(request, "event_id", "event"))
    if event is None:
        raise NotFoundError("event")
    attempts = await store.list_attempts(deps.db, event.id)
    return render(
        request,
        "event.html",
        {
            "event": event,
            "attempts": attempts,
            "refresh": REFRESH_SECONDS if event.status in ("queued", "sending") else None,
        },
    )


async def send_test_event(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    service_id = path_uuid(request, "service_id", "service")
    async with request.form() as form:
        check_csrf(request, form)
    alert = Alert(
        status="firing",
        dedup_key=f"pdconnect-test-{uuid.uuid4().hex[:12]}",
        summary="Test event from pdconnect: this service is connected",
        severity="info",
        source="pdconnect",
        details={"sent_from": "pdconnect settings page"},
        service=str(service_id),
    )
    try:
        [accepted] = await accept(deps.db, tenant_id, [alert], source="test")
    except InputError as exc:
        # An unknown service (or another tenant's) reads as not found.
        raise NotFoundError("service") from exc
    flash(request, "ok", f"Test event queued for {accepted.service.name}.")
    return redirect(f"/settings/events/{accepted.id}")


routes = [
    Route("/settings/events/{event_id}", event_page, methods=["GET"]),
    Route("/settings/services/{service_id}/test", send_test_event, methods=["POST"]),
]
