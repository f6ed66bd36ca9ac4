"""One alert, whatever format it came in: what every parser produces and what routing and the
Events API mapping read. Parsers validate; nothing downstream re-checks types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["firing", "acknowledged", "resolved"]


@dataclass(frozen=True)
class Link:
    href: str
    text: str | None = None


@dataclass(frozen=True)
class Image:
    src: str
    href: str | None = None
    alt: str | None = None


@dataclass(frozen=True)
class Alert:
    status: Status
    # None: the mapping generates one for a trigger (acknowledge and resolve always have one).
    dedup_key: str | None
    summary: str | None = None
    # As the sender said it; the tenant's severity map turns it into PagerDuty's four.
    severity: str | None = None
    source: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # Becomes `custom_details` (v2) or `details` (v1).
    details: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    images: tuple[Image, ...] = ()
    # ISO 8601, validated by the parser.
    timestamp: str | None = None
    # Where the sender wants it: one of the tenant's services by our id, PagerDuty id or name.
    service: str | None = None
    client: str | None = None
    client_url: str | None = None
    # True when the body must be exactly what the sender's own PagerDuty integration sends
    # (Alertmanager in group mode), so that moving to us changes nothing in PagerDuty: the
    # labels then only route (the details already show them), and acknowledge and resolve
    # carry the whole event, as that integration sends them.
    mirrors_sender: bool = False


@dataclass(frozen=True)
class ChangeEvent:
    summary: str
    source: str | None
    timestamp: str | None
    details: Mapping[str, Any]
    links: tuple[Link, ...]
    service: str | None
