"""Checks shared by the Events API v2, change-event and v1 validators, and the record a valid
event becomes.

Every validator reports all the problems it finds, in field order, as PagerDuty does (its
answers list several errors at once), and never stops at the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Api = Literal["v2", "change", "v1"]
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")

# A date and a time, then whatever `fromisoformat` accepts (fractions, "Z", "+00:00", and the
# "+0000" of PagerDuty's own examples). A bare date is not a point in time, so it is refused.
_DATE_AND_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


@dataclass(frozen=True)
class Event:
    """A valid event, reduced to what routing, dedup and incidents need."""

    api: Api
    routing_key: str
    action: str | None  # None for change events
    dedup_key: str | None  # None when a trigger left PagerDuty to make one
    summary: str | None
    severity: str | None  # v1 has none
    source: str | None


def blank(value: object) -> bool:
    return not isinstance(value, str) or not value.strip()


def is_iso_timestamp(value: object) -> bool:
    if not isinstance(value, str) or not _DATE_AND_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def optional_strings(obj: dict[str, Any], names: tuple[str, ...], errors: list[str]) -> None:
    for name in names:
        if name in obj and obj[name] is not None and not isinstance(obj[name], str):
            errors.append(f"'{name}' must be a string")


def is_https_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith("https://") and len(value) > 8


def check_links(raw: object, errors: list[str]) -> None:
    """`links[]`: objects with a required `href` and an optional `text`."""
    if raw is None:
        return
    if not isinstance(raw, list):
        errors.append("'links' must be an array")
        return
    for i, link in enumerate(raw):
        if not isinstance(link, dict):
            errors.append(f"'links[{i}]' must be an object")
            continue
        if blank(link.get("href")):
            errors.append(f"'links[{i}].href' is missing or blank")
        if link.get("text") is not None and not isinstance(link.get("text"), str):
            errors.append(f"'links[{i}].text' must be a string")


def check_images(raw: object, errors: list[str]) -> None:
    """`images[]`: objects with a required `src` served over HTTPS, optional `href`, `alt`."""
    if raw is None:
        return
    if not isinstance(raw, list):
        errors.append("'images' must be an array")
        return
    for i, image in enumerate(raw):
        if not isinstance(image, dict):
            errors.append(f"'images[{i}]' must be an object")
            continue
        src = image.get("src")
        if blank(src):
            errors.append(f"'images[{i}].src' is missing or blank")
        elif not is_https_url(src):
            errors.append(f"'images[{i}].src' must be an https URL")
        for name in ("href", "alt"):
            if image.get(name) is not None and not isinstance(image.get(name), str):
                errors.append(f"'images[{i}].{name}' must be a string")
