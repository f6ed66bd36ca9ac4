"""Delivery visibility: `GET /v1/events` and `GET /v1/events/{id}`, with the ingest key.

Every attempt is listed with PagerDuty's answer as it came, so a tenant can see exactly why
an event failed, is being retried, or is held."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.dispatch import log_store
from app.dispatch.log_store import Attempt, Event
from app.errors import InputError, NotFoundError
from app.outbox.states import EventStatus
from app.tenants.auth import request_tenant
from app.web.api import get_deps, path_uuid
from app.web.routing import api

STATUSES = tuple(str(status) for status in EventStatus)
LIMIT_DEFAULT = 50
LIMIT_MAX = 500
# Seqs are bigints: a larger `before` could not be the query's parameter.
BEFORE_MAX = 2**62


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "seq": event.seq,
        "service": None if event.service_id is None else str(event.service_id),
        "service_name": event.service_name,
        "dedup_key": event.dedup_key,
        "kind": event.kind,
        "api": event.api,
        "source": event.source,
        "status": event.status,
        "attempts": event.attempts,
        "next_attempt_at": (
            _iso(event.next_attempt_at) if event.status == EventStatus.QUEUED else None
        ),
        "created_at": _iso(event.created_at),
        "finished_at": _iso(event.finished_at),
        "last_error": event.last_error,
        "alert": None if event.alert_id is None else str(event.alert_id),
        "pagerduty_errors": list(event.pd_errors),
        "notes": list(event.notes),
        "incident": None
        if event.incident_status is None
        else {
            "status": event.incident_status,
            "changed_by": event.incident_changed_by,
            "changed_at": _iso(event.incident_changed_at),
            "html_url": event.incident_url,
        },
        "body": event.body,
    }


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "started_at": _iso(attempt.started_at),
        "finished_at": _iso(attempt.finished_at),
        "latency_ms": attempt.latency_ms,
        "http_status": attempt.http_status,
        "outcome": attempt.outcome,
        "response": attempt.response,
        "error": attempt.error,
    }


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InputError(name, "must be a whole number", status=400) from exc
    if not low <= value <= high:
        raise InputError(name, f"must be between {low} and {high}", status=400)
    return value


async def list_events(request: Request) -> Response:
    tenant_id = await request_tenant(request)
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise InputError("status", f"must be one of {', '.join(STATUSES)}", status=400)
    service = request.query_params.get("service")
    try:
        service_id = UUID(service) if service else None
    except ValueError as exc:
        raise InputError("service", "must be a service id", status=400) from exc
    dedup_key = request.query_params.get("dedup_key") or None
    if dedup_key is not None and "\x00" in dedup_key:
        # No stored key holds one, and PostgreSQL refuses it in a query.
        raise InputError("dedup_key", "must not contain a NUL character", status=400)
    limit = _int(request, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
    before = _int(request, "before", None, 1, BEFORE_MAX)
    events = await log_store.list_events(
        get_deps(request).db,
        tenant_id,
        status=None if status is None else EventStatus(status),
        service_id=service_id,
        dedup_key=dedup_key,
        before_seq=before,
        limit=limit or LIMIT_DEFAULT,
    )
    more = len(events) == limit
    return JSONResponse(
        {
            "events": [event_json(e) for e in events],
            "next_before": events[-1].seq if more else None,
            # How far back the list can go: finished events leave after this many days.
            "retention_days": _retention_days(request),
        }
    )


def _retention_days(request: Request) -> int | None:
    days = get_deps(request).config.retention_days
    return days if days > 0 else None


async def get_event(request: Request) -> Response:
    tenant_id = await request_tenant(request)
    db = get_deps(request).db
    event = await log_store.get_event(db, tenant_id, path_uuid(request, "event_id", "event"))
    if event is None:
        raise NotFoundError("event")
    attempts = await log_store.list_attempts(db, event.id)
    return JSONResponse(
        {**event_json(event), "delivery_attempts": [attempt_json(a) for a in attempts]}
    )


routes = [
    api("/v1/events", list_events, methods=["GET"]),
    api("/v1/events/{event_id}", get_event, methods=["GET"]),
]
