"""Reading what a callback says of a PagerDuty v3 webhook: the incident as the webhook shows
it (number, URL, urgency, assignees), who acted and when, and a note's content.

The body was verified by the webhook receiver before it comes here, but its shape is
PagerDuty's: anything missing or odd is None, never an error (the receiver answers 200 for
whatever it cannot use, and so a callback is simply not made)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# What a callback carries of PagerDuty's text at most.
TEXT_MAX = 1024
NOTE_MAX = 65536
ASSIGNEES_MAX = 50


@dataclass(frozen=True)
class IncidentEvent:
    event_id: str | None
    event_type: str
    occurred_at: datetime | None
    # `data.id`: the incident's, or for service.deleted the service's.
    resource_id: str | None
    incident_id: str | None
    incident_key: str | None
    service_id: str | None
    number: int | None
    status: str | None
    title: str | None
    url: str | None
    urgency: str | None
    assignees: tuple[dict[str, str | None], ...]
    agent: dict[str, str | None] | None
    note: dict[str, str | None] | None

    def incident_json(self) -> dict[str, Any]:
        return {
            "id": self.incident_id,
            "number": self.number,
            "url": self.url,
            "status": self.status,
            "title": self.title,
            "urgency": self.urgency,
            "assignees": list(self.assignees),
        }


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object, limit: int = TEXT_MAX) -> str | None:
    if not isinstance(value, str):
        return None
    clean = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return clean[:limit] or None


def _url(value: object) -> str | None:
    text = _text(value, 2049)
    if text is None or len(text) > 2048 or not text.startswith(("https://", "http://")):
        return None
    return text


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _user(value: object) -> dict[str, str | None] | None:
    user = _obj(value)
    if not user:
        return None
    return {"id": _text(user.get("id"), 100), "name": _text(user.get("summary"), 200)}


def read(raw: bytes) -> IncidentEvent | None:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    event = _obj(body.get("event") if isinstance(body, dict) else None)
    event_type = _text(event.get("event_type"), 100)
    if event_type is None:
        return None
    data = _obj(event.get("data"))
    is_note = data.get("type") == "incident_note"
    incident = _obj(data.get("incident")) if is_note else data
    number = incident.get("number")
    assignees = incident.get("assignees")
    return IncidentEvent(
        event_id=_text(event.get("id"), 200),
        event_type=event_type,
        occurred_at=_time(event.get("occurred_at")),
        resource_id=_text(data.get("id"), 100),
        incident_id=_text(incident.get("id"), 100),
        incident_key=_text(incident.get("incident_key")),
        service_id=_text(_obj(incident.get("service")).get("id"), 100),
        number=number if type(number) is int and number > 0 else None,
        status=_text(incident.get("status"), 50),
        title=_text(incident.get("title") or incident.get("summary")),
        url=_url(incident.get("html_url")),
        urgency=_text(incident.get("urgency"), 20),
        assignees=tuple(
            u
            for u in (_user(a) for a in (assignees if isinstance(assignees, list) else ()))
            if u is not None
        )[:ASSIGNEES_MAX],
        agent=_user(event.get("agent")),
        note=(
            {"id": _text(data.get("id"), 100), "content": _text(data.get("content"), NOTE_MAX)}
            if is_note
            else None
        ),
    )
