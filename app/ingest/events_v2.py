"""PagerDuty's Events API v2, drop-in: the same bodies (`/v2/enqueue`, `/v2/change/enqueue`)
with the tenant's ingest key as `routing_key`.

Refusals are `DropInError`s carrying messages in PagerDuty's words ("'payload.summary' is
missing or blank", "'payload.severity' is invalid (…)"), so the endpoint can answer exactly
as PagerDuty would: `{"status": "invalid event", "message": "Event object is invalid",
"errors": […]}`. Every problem found is reported, not just the first, as PagerDuty does.

We accept what PagerDuty accepts, with one leniency: any severity word is taken and the
tenant's severity map turns it into PagerDuty's four (PagerDuty's own four map to themselves).
acknowledge and resolve read only `dedup_key`, since PagerDuty ignores the rest for them.
"""

from __future__ import annotations

from typing import Any

from app.errors import InputError, text_problem
from app.ingest._values import is_iso_8601, json_copy
from app.ingest.alert import Alert, ChangeEvent, Image, Link, Status

# Longer keys are hashed by the mapping (PagerDuty takes 255); this only bounds what we store.
DEDUP_KEY_INPUT_MAX_LENGTH = 4096

EVENT_ACTIONS: dict[str, Status] = {
    "trigger": "firing",
    "acknowledge": "acknowledged",
    "resolve": "resolved",
}
NOT_AN_OBJECT = "Event object is invalid: the body must be a JSON object"


class DropInError(InputError):
    """A refusal in PagerDuty's shape: a list of messages, answered with 400."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("", "; ".join(errors), status=400)
        self.errors = list(errors)


def one_of(names: tuple[str, ...]) -> str:
    quoted = [f"'{name}'" for name in names]
    return f"must be one of the following: {', '.join(quoted[:-1])} or {quoted[-1]}"


class Problems:
    """Collects PagerDuty-style messages while a drop-in body is read."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def missing(self, name: str) -> None:
        self.errors.append(f"'{name}' is missing or blank")

    def invalid(self, name: str, why: str) -> None:
        self.errors.append(f"'{name}' is invalid ({why})")

    def text(
        self, obj: dict[Any, Any], key: str, name: str, *, required: bool = False
    ) -> str | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            self.invalid(name, "must be a string")
            return None
        problem = None if value is None else text_problem(value)
        if problem:
            self.invalid(name, problem)
            return None
        if value is None or not value.strip():
            if required:
                self.missing(name)
            return None
        return value

    def object(self, obj: dict[Any, Any], key: str, name: str) -> dict[Any, Any] | None:
        value = obj.get(key)
        if value is None:
            self.missing(name)
            return None
        if not isinstance(value, dict):
            self.invalid(name, "must be an object")
            return None
        return value

    def details(self, obj: dict[Any, Any], key: str, name: str) -> dict[str, Any]:
        """An object as it came; any other JSON value is kept under "details" rather than
        refused, since PagerDuty shows a plain string too."""
        value = obj.get(key)
        try:
            copied = json_copy(value, name)
        except InputError as exc:
            self.errors.append(f"'{exc.field}' {exc.message}")
            return {}
        if copied is None:
            return {}
        return copied if isinstance(copied, dict) else {"details": copied}

    def timestamp(self, obj: dict[Any, Any], key: str, name: str) -> str | None:
        value = self.text(obj, key, name)
        if value is not None and not is_iso_8601(value):
            self.invalid(name, "must be an ISO 8601 date and time")
            return None
        return value

    def dedup_key(self, obj: dict[Any, Any], key: str, *, required: bool) -> str | None:
        value = self.text(obj, key, key, required=required)
        if value is not None and len(value) > DEDUP_KEY_INPUT_MAX_LENGTH:
            self.invalid(key, f"must be at most {DEDUP_KEY_INPUT_MAX_LENGTH} characters")
            return None
        return value

    def items(self, obj: dict[Any, Any], key: str) -> list[tuple[str, dict[Any, Any]]]:
        """The objects of a list field, each with its name."""
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.invalid(key, "must be a list")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append((f"{key}[{i}]", item))
            else:
                self.invalid(f"{key}[{i}]", "must be an object")
        return out

    def links(self, obj: dict[Any, Any], key: str = "links") -> tuple[Link, ...]:
        links = []
        for name, item in self.items(obj, key):
            href = self.text(item, "href", f"{name}.href", required=True)
            text = self.text(item, "text", f"{name}.text")
            if href is not None:
                links.append(Link(href=href, text=text))
        return tuple(links)

    def images(self, obj: dict[Any, Any], key: str = "images") -> tuple[Image, ...]:
        images = []
        for name, item in self.items(obj, key):
            src = self.text(item, "src", f"{name}.src", required=True)
            href = self.text(item, "href", f"{name}.href")
            alt = self.text(item, "alt", f"{name}.alt")
            if src is not None:
                images.append(Image(src=src, href=href, alt=alt))
        return tuple(images)


def _action(obj: dict[Any, Any], key: str, problems: Problems) -> Status | None:
    action = problems.text(obj, key, key, required=True)
    if action is None:
        return None
    if action not in EVENT_ACTIONS:
        problems.invalid(key, one_of(tuple(EVENT_ACTIONS)))
        return None
    return EVENT_ACTIONS[action]


def parse_events_v2(body: object) -> tuple[str, Alert]:
    if not isinstance(body, dict):
        raise DropInError([NOT_AN_OBJECT])
    problems = Problems()
    routing_key = problems.text(body, "routing_key", "routing_key", required=True)
    status = _action(body, "event_action", problems)
    dedup_key = problems.dedup_key(body, "dedup_key", required=status not in (None, "firing"))
    if status != "firing":
        if problems.errors or routing_key is None or status is None:
            raise DropInError(problems.errors)
        return routing_key, _update(status, dedup_key)

    given = problems.object(body, "payload", "payload")
    # Without a payload, that one message says it all.
    payload, required = (given, True) if given is not None else ({}, False)
    summary = problems.text(payload, "summary", "payload.summary", required=required)
    source = problems.text(payload, "source", "payload.source", required=required)
    severity = problems.text(payload, "severity", "payload.severity", required=required)
    alert = Alert(
        status="firing",
        dedup_key=dedup_key,
        summary=summary,
        severity=severity,
        source=source,
        component=problems.text(payload, "component", "payload.component"),
        group=problems.text(payload, "group", "payload.group"),
        class_=problems.text(payload, "class", "payload.class"),
        labels={},
        details=problems.details(payload, "custom_details", "payload.custom_details"),
        links=problems.links(body),
        images=problems.images(body),
        timestamp=problems.timestamp(payload, "timestamp", "payload.timestamp"),
        service=None,
        client=problems.text(body, "client", "client"),
        client_url=problems.text(body, "client_url", "client_url"),
    )
    if problems.errors or routing_key is None:
        raise DropInError(problems.errors)
    return routing_key, alert


def _update(status: Status, dedup_key: str | None) -> Alert:
    """An acknowledge or resolve: only the key matters."""
    return Alert(status=status, dedup_key=dedup_key)


def parse_change_v2(body: object) -> tuple[str, ChangeEvent]:
    if not isinstance(body, dict):
        raise DropInError([NOT_AN_OBJECT])
    problems = Problems()
    routing_key = problems.text(body, "routing_key", "routing_key", required=True)
    given = problems.object(body, "payload", "payload")
    payload, required = (given, True) if given is not None else ({}, False)
    summary = problems.text(payload, "summary", "payload.summary", required=required)
    event = ChangeEvent(
        summary=summary or "",
        source=problems.text(payload, "source", "payload.source"),
        timestamp=problems.timestamp(payload, "timestamp", "payload.timestamp"),
        details=problems.details(payload, "custom_details", "payload.custom_details"),
        links=problems.links(body),
        service=None,
    )
    if problems.errors or routing_key is None:
        raise DropInError(problems.errors)
    return routing_key, event
