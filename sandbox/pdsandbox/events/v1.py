"""Events API v1 validation (`/generic/2010-04-15/create_event.json`), pagerduty.md §7.

v1 speaks in Rails-style sentences. Seen in PagerDuty's docs and real answers, verbatim:

- "Service key is the wrong length (should be 32 characters)"
- "event_type is invalid (must be one of: trigger acknowledge resolve)"
- "Description is too long (maximum is 1024 characters)"

The rest ("… can't be blank", "Incident key is too long (…)") follow the same forms.
"""

from __future__ import annotations

from typing import Any

from pdsandbox.events.bodies import DEDUP_KEY_MAX, ROUTING_KEY_LENGTH, SUMMARY_MAX
from pdsandbox.events.rules import ACTIONS, Event, blank, is_https_url, optional_strings

CONTEXT_TYPES = ("link", "image")


def _service_key(body: dict[str, Any], errors: list[str]) -> str:
    key = body.get("service_key")
    if blank(key):
        errors.append("Service key can't be blank")
        return ""
    assert isinstance(key, str)
    if len(key) != ROUTING_KEY_LENGTH:
        errors.append(
            f"Service key is the wrong length (should be {ROUTING_KEY_LENGTH} characters)"
        )
    return key


def _incident_key(body: dict[str, Any], event_type: object, errors: list[str]) -> str | None:
    key = body.get("incident_key")
    if key is not None and not isinstance(key, str):
        errors.append("Incident key must be a string")
        return None
    if isinstance(key, str) and len(key) > DEDUP_KEY_MAX:
        errors.append(f"Incident key is too long (maximum is {DEDUP_KEY_MAX} characters)")
    if event_type in ("acknowledge", "resolve") and blank(key):
        errors.append("Incident key can't be blank")
    return key if isinstance(key, str) and key.strip() else None


def _description(body: dict[str, Any], event_type: object, errors: list[str]) -> str | None:
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        errors.append("Description must be a string")
        return None
    if event_type == "trigger" and blank(description):
        errors.append("Description can't be blank")
    if isinstance(description, str) and len(description) > SUMMARY_MAX:
        errors.append(f"Description is too long (maximum is {SUMMARY_MAX} characters)")
    return description


def _contexts(raw: object, errors: list[str]) -> None:
    """`{type: "link", href, text}` or `{type: "image", src (https), href, alt}`."""
    if raw is None:
        return
    if not isinstance(raw, list):
        errors.append("Contexts must be an array")
        return
    for i, context in enumerate(raw):
        where = f"Contexts[{i}]"
        if not isinstance(context, dict):
            errors.append(f"{where} must be an object")
        elif context.get("type") not in CONTEXT_TYPES:
            errors.append(f"{where} type is invalid (must be one of: link image)")
        elif context["type"] == "link" and blank(context.get("href")):
            errors.append(f"{where} href can't be blank")
        elif context["type"] == "image" and blank(context.get("src")):
            errors.append(f"{where} src can't be blank")
        elif context["type"] == "image" and not is_https_url(context.get("src")):
            errors.append(f"{where} src must be an https URL")


def validate_v1(body: dict[str, Any]) -> Event | list[str]:
    errors: list[str] = []
    key = _service_key(body, errors)
    event_type = body.get("event_type")
    if event_type not in ACTIONS:
        errors.append(f"event_type is invalid (must be one of: {' '.join(ACTIONS)})")
    incident_key = _incident_key(body, event_type, errors)
    description = _description(body, event_type, errors)
    if body.get("details") is not None and not isinstance(body["details"], dict):
        errors.append("Details must be an object")
    optional_strings(body, ("client", "client_url"), errors)
    _contexts(body.get("contexts"), errors)
    if errors:
        return errors
    assert isinstance(event_type, str)
    return Event("v1", key, event_type, incident_key, description, None, None)
