"""Events API v2 validation: alert events (`/v2/enqueue`) and change events
(`/v2/change/enqueue`), with PagerDuty's error texts.

Texts seen in PagerDuty's real answers, kept verbatim:

- "Length of 'routing_key' is incorrect (should be 32 characters)"
- "'event_action' is missing or blank"
- "'summary' is too long (maiximum is 1024 characters)": the misspelling is PagerDuty's own,
  reported word for word by unrelated users; the other "is too long" texts follow it.

The rest follow the same pattern ("'<field>' is missing or blank", "'<field>' is invalid
(must be one of: …)", the last in the form of v1's documented event_type error).

Stricter than the docs where they are vague, never looser: `custom_details` must be an object,
`timestamp` a date and time, severities lower case; the field list is pagerduty.md §6.
"""

from __future__ import annotations

from typing import Any

from pdsandbox.events.bodies import DEDUP_KEY_MAX, ROUTING_KEY_LENGTH, SUMMARY_MAX
from pdsandbox.events.rules import (
    ACTIONS,
    SEVERITIES,
    Event,
    blank,
    check_images,
    check_links,
    is_iso_timestamp,
    optional_strings,
)


def missing(field: str) -> str:
    return f"'{field}' is missing or blank"


def too_long(field: str, limit: int) -> str:
    return f"'{field}' is too long (maiximum is {limit} characters)"  # sic: PagerDuty's text


def wrong_routing_key_length() -> str:
    return f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"


def _routing_key(body: dict[str, Any], errors: list[str]) -> str:
    key = body.get("routing_key")
    if blank(key):
        errors.append(missing("routing_key"))
        return ""
    assert isinstance(key, str)
    if len(key) != ROUTING_KEY_LENGTH:
        errors.append(wrong_routing_key_length())
    return key


def _timestamp(obj: dict[str, Any], errors: list[str]) -> None:
    if obj.get("timestamp") is not None and not is_iso_timestamp(obj["timestamp"]):
        errors.append("'timestamp' is not a valid ISO 8601 date and time")


def _custom_details(obj: dict[str, Any], errors: list[str]) -> None:
    if obj.get("custom_details") is not None and not isinstance(obj["custom_details"], dict):
        errors.append("'custom_details' must be an object")


def _summary(payload: dict[str, Any], errors: list[str]) -> str | None:
    summary = payload.get("summary")
    if blank(summary):
        errors.append(missing("summary"))
        return None
    assert isinstance(summary, str)
    if len(summary) > SUMMARY_MAX:
        errors.append(too_long("summary", SUMMARY_MAX))
    return summary


def _payload(body: dict[str, Any], errors: list[str]) -> dict[str, Any] | None:
    payload = body.get("payload")
    if payload is None:
        errors.append(missing("payload"))
        return None
    if not isinstance(payload, dict):
        errors.append("'payload' must be an object")
        return None
    return payload


def _dedup_key(body: dict[str, Any], action: object, errors: list[str]) -> str | None:
    dedup = body.get("dedup_key")
    if dedup is not None and not isinstance(dedup, str):
        errors.append("'dedup_key' must be a string")
        return None
    if isinstance(dedup, str) and len(dedup) > DEDUP_KEY_MAX:
        errors.append(too_long("dedup_key", DEDUP_KEY_MAX))
    if action in ("acknowledge", "resolve") and blank(dedup):
        errors.append(missing("dedup_key"))
    # A blank key on a trigger is no key: PagerDuty makes one.
    return dedup if isinstance(dedup, str) and dedup.strip() else None


_Described = tuple[str | None, str | None, str | None]  # summary, severity, source


def _trigger_payload(body: dict[str, Any], errors: list[str]) -> _Described:
    payload = _payload(body, errors)
    if payload is None:
        return None, None, None
    summary = _summary(payload, errors)
    source = payload.get("source")
    if blank(source):
        errors.append(missing("source"))
    severity = payload.get("severity")
    if blank(severity):
        errors.append(missing("severity"))
    elif severity not in SEVERITIES:
        errors.append(f"'severity' is invalid (must be one of: {' '.join(SEVERITIES)})")
    _timestamp(payload, errors)
    optional_strings(payload, ("component", "group", "class"), errors)
    _custom_details(payload, errors)
    return (
        summary,
        severity if isinstance(severity, str) else None,
        source if isinstance(source, str) else None,
    )


def validate_alert(body: dict[str, Any]) -> Event | list[str]:
    errors: list[str] = []
    key = _routing_key(body, errors)
    action = body.get("event_action")
    if blank(action):
        errors.append(missing("event_action"))
    elif action not in ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of: {' '.join(ACTIONS)})")
    dedup = _dedup_key(body, action, errors)
    summary = severity = source = None
    # acknowledge and resolve carry no payload worth checking: PagerDuty ignores it.
    if action == "trigger":
        summary, severity, source = _trigger_payload(body, errors)
    optional_strings(body, ("client", "client_url"), errors)
    check_images(body.get("images"), errors)
    check_links(body.get("links"), errors)
    if errors:
        return errors
    assert isinstance(action, str)
    return Event("v2", key, action, dedup, summary, severity, source)


def validate_change(body: dict[str, Any]) -> Event | list[str]:
    """`event_action` and `dedup_key` are not part of a change event; PagerDuty ignores what
    it does not know, and so does the sandbox. `links` and `images` are: PagerDuty's OpenAPI
    document (`reference/events-v2/openapiv3.json`, `createChangeEvent`) gives change events
    the same `Links` and `Images` as alerts, so they are checked the same way."""
    errors: list[str] = []
    key = _routing_key(body, errors)
    summary = source = None
    payload = _payload(body, errors)
    if payload is not None:
        summary = _summary(payload, errors)
        optional_strings(payload, ("source",), errors)
        source = payload.get("source") if isinstance(payload.get("source"), str) else None
        _timestamp(payload, errors)
        _custom_details(payload, errors)
    check_links(body.get("links"), errors)
    check_images(body.get("images"), errors)
    if errors:
        return errors
    return Event("change", key, None, None, summary, None, source)
