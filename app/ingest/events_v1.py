"""PagerDuty's Events API v1 (`create_event.json`), drop-in, with the tenant's ingest key as
`service_key`. Still sent by older integrations (Alibaba ARMS among them).

v1 has no severity, source or component: a v1 event routed to a v2 service gets the tenant's
default severity and our default source. `contexts[]` carry links and images.
"""

from __future__ import annotations

from typing import Any

from app.ingest.alert import Alert, Image, Link, Status
from app.ingest.events_v2 import NOT_AN_OBJECT, DropInError, Problems, one_of

EVENT_TYPES: dict[str, Status] = {
    "trigger": "firing",
    "acknowledge": "acknowledged",
    "resolve": "resolved",
}
CONTEXT_TYPES = ("link", "image")


def parse_events_v1(body: object) -> tuple[str, Alert]:
    if not isinstance(body, dict):
        raise DropInError([NOT_AN_OBJECT])
    problems = Problems()
    service_key = problems.text(body, "service_key", "service_key", required=True)
    status = _event_type(body, problems)
    trigger = status == "firing"
    incident_key = problems.dedup_key(
        body, "incident_key", required=status is not None and not trigger
    )
    description = problems.text(body, "description", "description", required=trigger)
    links, images = _contexts(body, problems) if trigger else ((), ())
    alert = Alert(
        status=status or "firing",
        dedup_key=incident_key,
        summary=description if trigger else None,
        severity=None,
        source=None,
        component=None,
        group=None,
        class_=None,
        labels={},
        # PagerDuty ignores the rest of an acknowledge or resolve, so we read it only to trigger.
        details=problems.details(body, "details", "details") if trigger else {},
        links=links,
        images=images,
        timestamp=None,
        service=None,
        client=problems.text(body, "client", "client") if trigger else None,
        client_url=problems.text(body, "client_url", "client_url") if trigger else None,
    )
    if problems.errors or service_key is None or status is None:
        raise DropInError(problems.errors)
    return service_key, alert


def _event_type(body: dict[Any, Any], problems: Problems) -> Status | None:
    event_type = problems.text(body, "event_type", "event_type", required=True)
    if event_type is None:
        return None
    if event_type not in EVENT_TYPES:
        problems.invalid("event_type", one_of(tuple(EVENT_TYPES)))
        return None
    return EVENT_TYPES[event_type]


def _contexts(
    body: dict[Any, Any], problems: Problems
) -> tuple[tuple[Link, ...], tuple[Image, ...]]:
    links: list[Link] = []
    images: list[Image] = []
    for name, item in problems.items(body, "contexts"):
        kind = problems.text(item, "type", f"{name}.type", required=True)
        if kind == "link":
            href = problems.text(item, "href", f"{name}.href", required=True)
            text = problems.text(item, "text", f"{name}.text")
            if href is not None:
                links.append(Link(href=href, text=text))
        elif kind == "image":
            src = problems.text(item, "src", f"{name}.src", required=True)
            href = problems.text(item, "href", f"{name}.href")
            alt = problems.text(item, "alt", f"{name}.alt")
            if src is not None:
                images.append(Image(src=src, href=href, alt=alt))
        elif kind is not None:
            problems.invalid(f"{name}.type", one_of(CONTEXT_TYPES))
    return tuple(links), tuple(images)
