"""Reading a PagerDuty v3 webhook event: only what we record, read defensively.

The body is authenticated before it is read, but its shape is PagerDuty's to change: new event
types appear over time, the test event `pagey.ping` carries no `data.id`, and a resource may
be something other than an incident. So nothing here refuses a body: what cannot be read is
None, and the receiver records the delivery and ignores what it does not understand (a 4xx
would be a dropped delivery, and three in a row disable the subscription)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.urls import is_web_url

# The `integer` column incident numbers are stored in; PagerDuty's count from 1.
INCIDENT_NUMBER_MAX = 2**31 - 1
EVENT_TYPE_MAX_LENGTH = 100
# A cut URL leads nowhere: a longer one is not kept at all.
URL_MAX_LENGTH = 2048
# A note's text as kept: PagerDuty's web app takes notes of up to 25 000 characters.
NOTE_MAX_LENGTH = 25_000
# Recorded as the event type of a delivery that has none to read. Parenthesised: PagerDuty's
# event types are dotted names (`incident.triggered`), so these never stand for a real one.
NOT_JSON = "(not json)"
NO_EVENT_TYPE = "(no event_type)"


@dataclass(frozen=True)
class WebhookEvent:
    event_type: str
    # `data.type`: "incident", "service", "ping" (pagey.ping), "incident_note", …
    data_type: str | None
    occurred_at: datetime | None
    # `data.id`: the incident's for incidents, the service's for service.deleted.
    resource_id: str | None
    service_id: str | None
    incident_key: str | None
    incident_number: int | None
    status: str | None
    title: str | None
    html_url: str | None
    agent: str | None
    # `incident.annotated`: the note's incident (`data.incident.id`) and its text; `data.id`
    # (resource_id) is then the note's id.
    note_incident_id: str | None = None
    note_content: str | None = None


def _text(value: object, limit: int = 1024) -> str | None:
    if not isinstance(value, str):
        return None
    # As PostgreSQL text can hold it: no NUL, no unpaired surrogate (JSON's \u escapes carry
    # both). Neither occurs in a dedup key of ours, so no incident is lost to a match.
    clean = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return clean[:limit] or None


def _web_url(value: object) -> str | None:
    """An http or https URL, or None: the incident's `html_url` becomes a link on the event
    page and in the delivery API, and a signed body is only as careful as whoever holds the
    subscription's secret (a `javascript:` link would run on our page)."""
    url = _text(value, URL_MAX_LENGTH + 1)
    if url is None or len(url) > URL_MAX_LENGTH or not is_web_url(url):
        return None
    return url


def _incident_number(value: object) -> int | None:
    if type(value) is not int or not 0 < value <= INCIDENT_NUMBER_MAX:
        return None
    return value


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a local time of nowhere: it cannot be ordered against others
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+05:00 is a valid time before any UTC datetime can hold.
        return None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unreadable(event_type: str) -> WebhookEvent:
    return WebhookEvent(event_type, None, None, None, None, None, None, None, None, None, None)


def parse_event(raw: bytes) -> WebhookEvent:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8 too; RecursionError: arrays nested a few thousand deep
        # fit in any body limit.
        return _unreadable(NOT_JSON)
    event = _object(body.get("event") if isinstance(body, dict) else None)
    event_type = _text(event.get("event_type"), EVENT_TYPE_MAX_LENGTH)
    if event_type is None:
        return _unreadable(NO_EVENT_TYPE)
    data = _object(event.get("data"))
    service = _object(data.get("service"))
    agent = _object(event.get("agent"))
    return WebhookEvent(
        event_type=event_type,
        data_type=_text(data.get("type"), 100),
        occurred_at=_time(event.get("occurred_at")),
        resource_id=_text(data.get("id"), 100),
        service_id=_text(service.get("id"), 100),
        incident_key=_text(data.get("incident_key"), 1024),
        incident_number=_incident_number(data.get("number")),
        status=_text(data.get("status"), 50),
        title=_text(data.get("title")),
        html_url=_web_url(data.get("html_url")),
        agent=_text(agent.get("summary"), 200),
        note_incident_id=_text(_object(data.get("incident")).get("id"), 100),
        note_content=_text(data.get("content"), NOTE_MAX_LENGTH),
    )
