"""An alert as the Events API body PagerDuty will accept (PD-CEF), within PagerDuty's limits.

Bodies never hold the routing key: the dispatcher adds it at send time, so keys, which are
secrets, are never stored in the outbox. Absent fields are omitted, never sent as null.
Mapping is deterministic: the same alert gives the same body (the one exception, a trigger
without a dedup key, takes its new key from the caller).

What a trigger carries:
- `custom_details` (v1: `details`) is the alert's details, plus its labels under `labels`
  (one fixed place, so a PagerDuty event rule on `custom_details.labels.team` always finds
  them); a native alert cannot give both (the parser refuses), and details win otherwise
- `source` defaults to "pdconnect"; `severity` goes through the tenant's severity map
- acknowledge and resolve carry only the action and the key, since PagerDuty ignores the
  rest; except for an alert that mirrors its sender's own integration (Alertmanager in group
  mode), whose every event is built as that integration builds it

Every change the mapping makes to what the sender said is listed in `notes`, for the
delivery log. The limits follow Alertmanager's PagerDuty notifier, which Grafana copies:
texts over 1024 characters are cut to 1023 and "…"; an event over 512 000 bytes loses its
custom details, replaced by Alertmanager's own note. Keys over 255 characters become their
sha256 hex, so later updates with the same long key still find the alert.

Only http and https URLs go on as links, image links and `client_url` (image sources: https
only), whichever format they came in: PagerDuty makes them links for whoever opens the
incident, where a `javascript:` one would run. Anything else is dropped with a note.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.errors import InputError
from app.ingest.alert import Alert, ChangeEvent, Image, Link
from app.ingest.severity import SeverityMap
from app.jsoncodec import dumps_bound, strict_copy
from app.urls import HTTPS_ONLY, is_web_url

SUMMARY_MAX_LENGTH = 1024
DESCRIPTION_MAX_LENGTH = 1024
DEDUP_KEY_MAX_LENGTH = 255
EVENT_MAX_BYTES = 512_000
ROUTING_KEY_LENGTH = 32
# PagerDuty documents no limit for these; ours keeps every field bounded, so that once the
# custom details, links and images are gone an event always fits.
FIELD_MAX_LENGTH = 1024
URL_MAX_LENGTH = 2048
DEFAULT_SOURCE = "pdconnect"
NOT_WEB = "not http or https"
TRUNCATION_MARKER = "…"
# Alertmanager's text (notify/pagerduty/pagerduty.go, encodeMessage), word for word.
DETAILS_REMOVED = (
    "Custom details have been removed because the original event exceeds the maximum size of 512KB"
)
# `"routing_key": "<32 characters>"` and its separator, added by the dispatcher.
KEY_FIELD_BYTES = len(json.dumps({"routing_key": "k" * ROUTING_KEY_LENGTH}))

Kind = Literal["trigger", "acknowledge", "resolve", "change"]
Api = Literal["v2", "v1"]
KINDS: dict[str, Kind] = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}


@dataclass(frozen=True)
class OutboundEvent:
    kind: Kind
    # Which PagerDuty endpoint family; change events are "v2".
    api: Api
    # None only for change events.
    dedup_key: str | None
    # The Events API body without routing_key / service_key.
    body: Mapping[str, Any]
    notes: tuple[str, ...]


class _Notes(list[str]):
    def add(self, note: str) -> None:
        if note not in self:
            self.append(note)


def event_size(body: Mapping[str, Any]) -> int:
    """Bytes on the wire once the key is added, measured in the most expansive common
    encoding (non-ASCII as \\u escapes, spaced separators), so it fits however it is sent."""
    return len(json.dumps(body)) + KEY_FIELD_BYTES


def _fits(body: Mapping[str, Any]) -> bool:
    """`event_size(body) <= EVENT_MAX_BYTES`, measured exactly only when a cheap bound cannot
    tell (an event within a few hundred KB of the limit)."""
    bound = dumps_bound(body)
    if bound is not None and bound + KEY_FIELD_BYTES <= EVENT_MAX_BYTES:
        return True
    return event_size(body) <= EVENT_MAX_BYTES


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """Alertmanager's TruncateInRunes: keep `limit - 1` characters and add "…"."""
    if len(text) <= limit:
        return text, False
    if limit <= 3:
        return text[:limit], True
    return text[: limit - 1] + TRUNCATION_MARKER, True


def _cut(text: str, limit: int, name: str, notes: _Notes) -> str:
    out, cut = truncate(text, limit)
    if cut:
        notes.add(f"{name} truncated")
    return out


def _fit_key(key: str, name: str, notes: _Notes) -> str:
    if len(key) <= DEDUP_KEY_MAX_LENGTH:
        return key
    notes.add(f"{name} hashed")
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def wire_dedup_key(key: str) -> str:
    """The key as PagerDuty gets it (what `to_outbound` puts in the body): an alert's life is
    found by it."""
    return _fit_key(key, "dedup_key", _Notes())


def _json_object(value: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A deep copy that is sure to serialise strictly."""
    try:
        copied = strict_copy(value) if value else {}
    except (TypeError, ValueError) as exc:
        raise InputError(field, "must hold only JSON values") from exc
    return copied if isinstance(copied, dict) else {}


def _custom_details(alert: Alert, notes: _Notes) -> dict[str, Any]:
    details = _json_object(alert.details, "details")
    if alert.labels and not alert.mirrors_sender:
        if "labels" in details:
            notes.add("labels not added: details already have labels")
        else:
            details["labels"] = dict(alert.labels)
    return details


def _links(links: tuple[Link, ...], notes: _Notes) -> list[dict[str, str]]:
    out = []
    for link in links:
        if not is_web_url(link.href):
            notes.add(f"link dropped: {NOT_WEB}")
            continue
        out.append({"href": link.href, **({"text": link.text} if link.text else {})})
    return out


def _images(images: tuple[Image, ...], notes: _Notes) -> list[dict[str, str]]:
    out = []
    for image in images:
        # PagerDuty shows only https images; others would be broken pictures in the incident,
        # and a src with no host after "https://" can get the whole event refused.
        if not is_web_url(image.src, schemes=HTTPS_ONLY):
            notes.add("image dropped: not https")
            continue
        href = image.href
        if href and not is_web_url(href):
            # The picture is still worth showing; only where it leads is not.
            notes.add(f"image href dropped: {NOT_WEB}")
            href = None
        extra = {k: v for k, v in (("href", href), ("alt", image.alt)) if v}
        out.append({"src": image.src, **extra})
    return out


def _client(alert: Alert, body: dict[str, Any], notes: _Notes) -> None:
    if alert.client:
        body["client"] = _cut(alert.client, FIELD_MAX_LENGTH, "client", notes)
    if alert.client_url:
        if not is_web_url(alert.client_url):
            notes.add(f"client_url dropped: {NOT_WEB}")
        elif len(alert.client_url) <= URL_MAX_LENGTH:
            body["client_url"] = alert.client_url
        else:
            # A cut URL leads nowhere.
            notes.add(f"client_url dropped: over {URL_MAX_LENGTH} characters")


def _fit(
    body: dict[str, Any],
    details_in: dict[str, Any],
    details_key: str,
    extras: tuple[str, ...],
    essentials: dict[str, Any],
    notes: _Notes,
) -> dict[str, Any]:
    """Bring an event under EVENT_MAX_BYTES: first as Alertmanager does (custom details out),
    then the links and images, and if that is not enough the essentials alone."""
    if _fits(body):
        return body
    if details_key in details_in:
        details_in[details_key] = {"error": DETAILS_REMOVED}
        notes.add(f"{details_key} dropped: event over {EVENT_MAX_BYTES} bytes")
        if _fits(body):
            return body
    present = [name for name in extras if name in body]
    for name in present:
        del body[name]
    if present:
        notes.add(f"{' and '.join(present)} dropped: event over {EVENT_MAX_BYTES} bytes")
        if _fits(body):
            return body
    # Every essential field is bounded (texts cut to 1024 characters, keys to 255), so this
    # fits whatever the rest held.
    notes.add(f"event reduced to its required fields: over {EVENT_MAX_BYTES} bytes")
    return essentials


def _timestamp(value: str) -> str:
    """The parsers take RFC 3339's lower-case "t" and "z"; PagerDuty documents upper case
    only (and the sandbox refuses the rest), so send that. A validated timestamp holds no
    other letter."""
    return value.upper()


def _summary(alert: Alert) -> str:
    if alert.summary is None or not alert.summary.strip():
        raise InputError("summary", "required to trigger")
    return alert.summary


def _severity(alert: Alert, severities: SeverityMap, notes: _Notes) -> str:
    """PagerDuty's severity for the alert; a word of the sender's the tenant's table (or the
    default) turned into another is noted, so the history can say "P1, sent as critical"."""
    mapped = severities.map(alert.severity)
    if alert.severity is not None and alert.severity.strip().lower() != mapped:
        notes.add(f"severity {_quote(alert.severity)} sent as {mapped}")
    return mapped


def _quote(text: str, limit: int = 64) -> str:
    return "\u201c" + (text if len(text) <= limit else text[: limit - 1] + "\u2026") + "\u201d"


def _v2_event(
    alert: Alert, kind: Kind, key: str, severities: SeverityMap, notes: _Notes
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "summary": _cut(_summary(alert), SUMMARY_MAX_LENGTH, "summary", notes),
        "source": _cut(alert.source or DEFAULT_SOURCE, FIELD_MAX_LENGTH, "source", notes),
        "severity": _severity(alert, severities, notes),
    }
    essentials = {"event_action": kind, "dedup_key": key, "payload": dict(payload)}
    if alert.timestamp:
        payload["timestamp"] = _timestamp(alert.timestamp)
    for name, value in (("component", alert.component), ("group", alert.group)):
        if value:
            payload[name] = _cut(value, FIELD_MAX_LENGTH, name, notes)
    if alert.class_:
        payload["class"] = _cut(alert.class_, FIELD_MAX_LENGTH, "class", notes)
    details = _custom_details(alert, notes)
    if details:
        payload["custom_details"] = details
    body: dict[str, Any] = {"event_action": kind, "dedup_key": key, "payload": payload}
    if links := _links(alert.links, notes):
        body["links"] = links
    if images := _images(alert.images, notes):
        body["images"] = images
    _client(alert, body, notes)
    return _fit(body, payload, "custom_details", ("links", "images"), essentials, notes)


def _v1_event(alert: Alert, kind: Kind, key: str, notes: _Notes) -> dict[str, Any]:
    description = _cut(_summary(alert), DESCRIPTION_MAX_LENGTH, "description", notes)
    essentials = {"event_type": kind, "incident_key": key, "description": description}
    body: dict[str, Any] = dict(essentials)
    details = _custom_details(alert, notes)
    if details:
        body["details"] = details
    # v1 reads client and client_url on a trigger only (Alertmanager sends them only then).
    if kind == "trigger":
        _client(alert, body, notes)
    links = [{"type": "link", **link} for link in _links(alert.links, notes)]
    images = [{"type": "image", **image} for image in _images(alert.images, notes)]
    if links or images:
        body["contexts"] = links + images
    return _fit(body, body, "details", ("contexts",), essentials, notes)


def to_outbound(
    alert: Alert, *, api: Api, severity_map: SeverityMap, new_dedup_key: Callable[[], str]
) -> OutboundEvent:
    kind = KINDS[alert.status]
    notes = _Notes()
    key_field = "dedup_key" if api == "v2" else "incident_key"
    key = alert.dedup_key
    if key is None:
        if kind != "trigger":
            raise InputError("dedup_key", f"required to {kind}")
        key = new_dedup_key()
    key = _fit_key(key, key_field, notes)
    body: dict[str, Any]
    if kind != "trigger" and not alert.mirrors_sender:
        body = {"event_action" if api == "v2" else "event_type": kind, key_field: key}
    elif api == "v2":
        body = _v2_event(alert, kind, key, severity_map, notes)
    else:
        body = _v1_event(alert, kind, key, notes)
    return OutboundEvent(kind=kind, api=api, dedup_key=key, body=body, notes=tuple(notes))


def change_to_outbound(event: ChangeEvent) -> OutboundEvent:
    notes = _Notes()
    if not event.summary.strip():
        raise InputError("summary", "required")
    payload: dict[str, Any] = {"summary": _cut(event.summary, SUMMARY_MAX_LENGTH, "summary", notes)}
    if event.source:
        payload["source"] = _cut(event.source, FIELD_MAX_LENGTH, "source", notes)
    essentials = {"payload": dict(payload)}
    if event.timestamp:
        payload["timestamp"] = _timestamp(event.timestamp)
    details = _json_object(event.details, "details")
    if details:
        payload["custom_details"] = details
    body: dict[str, Any] = {"payload": payload}
    if links := _links(event.links, notes):
        body["links"] = links
    body = _fit(body, payload, "custom_details", ("links",), essentials, notes)
    return OutboundEvent(kind="change", api="v2", dedup_key=None, body=body, notes=tuple(notes))
