"""Reading a PagerDuty v3 webhook event: only what we record, read defensively (the body is
authenticated, but its shape is PagerDuty's to change)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from app.errors import InputError

# The `integer` column incident numbers are stored in; PagerDuty's count from 1.
INCIDENT_NUMBER_MAX = 2**31 - 1


@dataclass(frozen=True)
class WebhookEvent:
    event_type: str
    occurred_at: datetime
    # Incidents: the incident; service.deleted: the service.
    resource_id: str
    service_id: str | None
    incident_key: str | None
    incident_number: int | None
    status: str | None
    title: str | None
    html_url: str | None
    agent: str | None


def _text(value: object, limit: int = 1024) -> str | None:
    if not isinstance(value, str):
        return None
    # As PostgreSQL text can hold it: no NUL, no unpaired surrogate (JSON's \u escapes carry
    # both). Neither occurs in a dedup key of ours, so no incident is lost to a match.
    clean = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return clean[:limit] or None


def _incident_number(value: object) -> int | None:
    if type(value) is not int or not 0 < value <= INCIDENT_NUMBER_MAX:
        return None
    return value


def parse_event(raw: bytes) -> WebhookEvent:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: arrays nested a few thousand deep fit in any body limit.
        raise InputError("", "body is not JSON", status=400) from exc
    event = body.get("event") if isinstance(body, dict) else None
    if not isinstance(event, dict):
        raise InputError("event", "is missing", status=400)
    event_type = _text(event.get("event_type"), 100)
    if event_type is None:
        raise InputError("event.event_type", "is missing", status=400)
    try:
        occurred_at = datetime.fromisoformat(str(event.get("occurred_at")).replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError("event.occurred_at", "is not a time", status=400) from exc
    if occurred_at.tzinfo is None:
        raise InputError("event.occurred_at", "has no time zone", status=400)
    try:
        occurred_at = occurred_at.astimezone(UTC)
    except OverflowError as exc:
        # 0001-01-01T00:00:00+05:00 is a valid time before any UTC datetime can hold.
        raise InputError("event.occurred_at", "is out of range", status=400) from exc
    data = event.get("data")
    if not isinstance(data, dict):
        raise InputError("event.data", "is missing", status=400)
    resource_id = _text(data.get("id"), 100)
    if resource_id is None:
        raise InputError("event.data.id", "is missing", status=400)
    service = data.get("service")
    agent = event.get("agent")
    number = data.get("number")
    return WebhookEvent(
        event_type=event_type,
        occurred_at=occurred_at,
        resource_id=resource_id,
        service_id=_text(service.get("id"), 100) if isinstance(service, dict) else None,
        incident_key=_text(data.get("incident_key"), 1024),
        incident_number=_incident_number(number),
        status=_text(data.get("status"), 50),
        title=_text(data.get("title")),
        html_url=_text(data.get("html_url"), 2048),
        agent=_text(agent.get("summary"), 200) if isinstance(agent, dict) else None,
    )
