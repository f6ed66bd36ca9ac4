"""Our own alert format (`POST /v1/alerts`): one alert object, or `{"alerts": […]}`.

A batch is accepted whole or refused whole: the first wrong field anywhere refuses it, named
as `alerts[i].field`. Unknown fields are refused too, so a misspelt `severty` is caught
instead of silently paging at the default severity.
"""

from __future__ import annotations

from typing import Any

from app.errors import InputError, key_name
from app.ingest._values import (
    check_text,
    is_iso_8601,
    join,
    json_copy,
    optional_list,
    optional_object,
    optional_text,
)
from app.ingest.alert import Alert, Image, Link, Status

BATCH_MAX = 1000
LABELS_MAX = 100
LABEL_NAME_MAX_LENGTH = 100
LABEL_VALUE_MAX_LENGTH = 1024
# Longer keys are accepted and hashed by the mapping; this only bounds what we store.
DEDUP_KEY_INPUT_MAX_LENGTH = 4096
SERVICE_MAX_LENGTH = 255

STATUSES: tuple[Status, ...] = ("firing", "acknowledged", "resolved")
FIELDS = frozenset(
    {
        *("dedup_key", "id", "status", "summary", "severity", "source", "component", "group"),
        *("class", "labels", "details", "links", "images", "timestamp", "service"),
    }
)


def parse_native(body: object) -> list[Alert]:
    if isinstance(body, dict) and "alerts" in body:
        extra = sorted(key_name(k) for k in body if k != "alerts")
        if extra:
            raise InputError(extra[0], 'unknown field; a batch is {"alerts": […]} alone')
        items = body["alerts"]
        if not isinstance(items, list):
            raise InputError("alerts", "must be a list of alerts")
        if not 1 <= len(items) <= BATCH_MAX:
            raise InputError("alerts", f"must hold 1 to {BATCH_MAX} alerts")
        return [_alert(item, f"alerts[{i}]") for i, item in enumerate(items)]
    return [_alert(body, "")]


def _alert(value: object, prefix: str) -> Alert:
    if not isinstance(value, dict):
        raise InputError(prefix, "an alert must be a JSON object")
    obj: dict[Any, Any] = value
    unknown = sorted(key_name(k) for k in obj if k not in FIELDS)
    if unknown:
        raise InputError(join(prefix, unknown[0]), "unknown field")

    status = _status(obj, prefix)
    dedup_key = _dedup_key(obj, prefix)
    if dedup_key is None and status != "firing":
        raise InputError(join(prefix, "dedup_key"), f"required when status is {status}")
    summary = optional_text(obj, "summary", prefix)
    if summary is None and status == "firing":
        raise InputError(join(prefix, "summary"), "required when status is firing")
    timestamp = optional_text(obj, "timestamp", prefix)
    if timestamp is not None and not is_iso_8601(timestamp):
        raise InputError(join(prefix, "timestamp"), "must be ISO 8601, like 2026-05-01T12:00:00Z")
    service = optional_text(obj, "service", prefix)
    if service is not None and len(service) > SERVICE_MAX_LENGTH:
        raise InputError(join(prefix, "service"), f"at most {SERVICE_MAX_LENGTH} characters")

    labels = _labels(obj, prefix)
    details_obj = optional_object(obj, "details", prefix)
    details = json_copy(details_obj or {}, join(prefix, "details"))
    if labels and "labels" in details:
        # Both would land on custom_details.labels; one must give way, and silently would lose.
        raise InputError(join(prefix, "details.labels"), "give labels or details.labels, not both")

    return Alert(
        status=status,
        dedup_key=dedup_key,
        summary=summary,
        severity=optional_text(obj, "severity", prefix),
        source=optional_text(obj, "source", prefix),
        component=optional_text(obj, "component", prefix),
        group=optional_text(obj, "group", prefix),
        class_=optional_text(obj, "class", prefix),
        labels=labels,
        details=details,
        links=_links(obj, prefix),
        images=_images(obj, prefix),
        timestamp=timestamp,
        service=service,
    )


def _status(obj: dict[Any, Any], prefix: str) -> Status:
    raw = obj.get("status")
    if raw is None:
        return "firing"
    for status in STATUSES:
        if raw == status:
            return status
    raise InputError(join(prefix, "status"), "must be firing, acknowledged or resolved")


def _dedup_key(obj: dict[Any, Any], prefix: str) -> str | None:
    key = optional_text(obj, "dedup_key", prefix)
    alias = optional_text(obj, "id", prefix)
    if key is not None and alias is not None and key != alias:
        raise InputError(join(prefix, "id"), "id is another name for dedup_key; give one")
    key = key if key is not None else alias
    if key is not None and len(key) > DEDUP_KEY_INPUT_MAX_LENGTH:
        raise InputError(
            join(prefix, "dedup_key"), f"at most {DEDUP_KEY_INPUT_MAX_LENGTH} characters"
        )
    return key


def _labels(obj: dict[Any, Any], prefix: str) -> dict[str, str]:
    value = optional_object(obj, "labels", prefix)
    path = join(prefix, "labels")
    if value is None:
        return {}
    if len(value) > LABELS_MAX:
        raise InputError(path, f"at most {LABELS_MAX} labels")
    labels: dict[str, str] = {}
    for name, label in value.items():
        if not isinstance(name, str):
            raise InputError(path, "label names must be strings")
        where = join(path, key_name(name))
        if not 1 <= len(name) <= LABEL_NAME_MAX_LENGTH:
            raise InputError(where, f"label names have 1 to {LABEL_NAME_MAX_LENGTH} characters")
        check_text(name, where)
        if not isinstance(label, str):
            raise InputError(where, "must be a string")
        if len(label) > LABEL_VALUE_MAX_LENGTH:
            raise InputError(where, f"at most {LABEL_VALUE_MAX_LENGTH} characters")
        labels[name] = check_text(label, where)
    return labels


def _links(obj: dict[Any, Any], prefix: str) -> tuple[Link, ...]:
    links = []
    for i, item in enumerate(optional_list(obj, "links", prefix)):
        where = join(prefix, f"links[{i}]")
        if not isinstance(item, dict):
            raise InputError(where, "must be an object {href, text}")
        href = optional_text(item, "href", where)
        if href is None:
            raise InputError(join(where, "href"), "required")
        links.append(Link(href=href, text=optional_text(item, "text", where)))
    return tuple(links)


def _images(obj: dict[Any, Any], prefix: str) -> tuple[Image, ...]:
    images = []
    for i, item in enumerate(optional_list(obj, "images", prefix)):
        where = join(prefix, f"images[{i}]")
        if not isinstance(item, dict):
            raise InputError(where, "must be an object {src, href, alt}")
        src = optional_text(item, "src", where)
        if src is None:
            raise InputError(join(where, "src"), "required")
        images.append(
            Image(
                src=src,
                href=optional_text(item, "href", where),
                alt=optional_text(item, "alt", where),
            )
        )
    return tuple(images)
