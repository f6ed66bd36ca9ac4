"""Alerts and incidents opened, acknowledged and resolved by Events API events.

Dedup follows PagerDuty (pagerduty.md §6, the v2 "Alert De-Duplication" docs):

- An alert is identified by (routing key, dedup key): acknowledge and resolve reach only an
  alert triggered through the same routing key. Keys and integrations are one to one, so this
  is also "per integration".
- A trigger opens an alert, and an incident for it, unless that alert is open (triggered or
  acknowledged); then it is a duplicate, logged on the same incident, which keeps its status.
- Acknowledge and resolve with no open alert do nothing.
- After a resolve the alert is closed: the next trigger with that key opens a new one.

Each alert gets its own incident (PagerDuty without alert grouping). Records here are mutable,
unlike `models`: they live only inside the book, and readers get JSON copies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from app.sandbox.timefmt import iso

MAX_INCIDENTS = 100_000  # the oldest resolved ones go first past this
MAX_LOG_ENTRIES = 100  # per incident; `log_entry_count` keeps the true number
HIGH_URGENCY = ("critical", "error")  # v1 events carry no severity and page as high

Listener = Callable[[str, "Incident"], None]


@dataclass(slots=True)
class LogEntry:
    type: str  # "trigger_log_entry", "acknowledge_log_entry", "resolve_log_entry"
    at: float
    summary: str | None
    channel: str  # "events_api_v2" or "events_api_v1"

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "created_at": iso(self.at),
            "summary": self.summary,
            "channel": {"type": self.channel},
        }


@dataclass(slots=True)
class Incident:
    id: str
    number: int
    account_id: str
    service_id: str
    integration_id: str
    routing_key: str
    incident_key: str  # the alert's dedup key
    title: str
    severity: str | None
    urgency: str
    created_at: float
    alert_id: str
    status: str = "triggered"
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    triggers: int = 1  # the first trigger and its duplicates
    log_entries: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=MAX_LOG_ENTRIES))
    log_entry_count: int = 0

    def log(self, entry: LogEntry) -> None:
        self.log_entries.append(entry)
        self.log_entry_count += 1


@dataclass(frozen=True)
class Trigger:
    """What a trigger event says, as the book needs it."""

    account_id: str
    service_id: str
    integration_id: str
    routing_key: str
    dedup_key: str
    summary: str
    severity: str | None
    channel: str


class IncidentBook:
    def __init__(self, new_id: Callable[[], str]) -> None:
        self._new_id = new_id
        self.incidents: dict[str, Incident] = {}  # insertion order is creation order
        self._open: dict[tuple[str, str], str] = {}  # (routing key, dedup key) -> incident id
        self._numbers: dict[str, int] = {}  # per account, as PagerDuty numbers them
        # Called with ("incident.triggered" | ".acknowledged" | ".resolved", incident) on each
        # change, so webhooks back to the product can hang off the book.
        self.listeners: list[Listener] = []

    def __contains__(self, incident_id: object) -> bool:
        return incident_id in self.incidents

    def open_incident(self, routing_key: str, dedup_key: str) -> Incident | None:
        found = self._open.get((routing_key, dedup_key))
        return self.incidents[found] if found is not None else None

    def trigger(self, event: Trigger, now: float) -> Incident:
        entry = LogEntry("trigger_log_entry", now, event.summary, event.channel)
        incident = self.open_incident(event.routing_key, event.dedup_key)
        if incident is not None:
            incident.triggers += 1
            incident.log(entry)
            return incident
        number = self._numbers.get(event.account_id, 0) + 1
        self._numbers[event.account_id] = number
        incident = Incident(
            id=self._new_id(),
            number=number,
            account_id=event.account_id,
            service_id=event.service_id,
            integration_id=event.integration_id,
            routing_key=event.routing_key,
            incident_key=event.dedup_key,
            title=event.summary,
            severity=event.severity,
            urgency="high" if event.severity in HIGH_URGENCY or not event.severity else "low",
            created_at=now,
            alert_id=self._new_id(),
        )
        incident.log(entry)
        self.incidents[incident.id] = incident
        self._open[(event.routing_key, event.dedup_key)] = incident.id
        self._trim()
        self._notify("incident.triggered", incident)
        return incident

    def acknowledge(self, routing_key: str, dedup_key: str, now: float, channel: str) -> None:
        incident = self.open_incident(routing_key, dedup_key)
        if incident is None:
            return
        incident.log(LogEntry("acknowledge_log_entry", now, None, channel))
        if incident.status == "triggered":
            incident.status = "acknowledged"
            incident.acknowledged_at = now
            self._notify("incident.acknowledged", incident)

    def resolve(self, routing_key: str, dedup_key: str, now: float, channel: str) -> None:
        incident = self.open_incident(routing_key, dedup_key)
        if incident is None:
            return
        incident.log(LogEntry("resolve_log_entry", now, None, channel))
        incident.status = "resolved"
        incident.resolved_at = now
        del self._open[(routing_key, dedup_key)]
        self._notify("incident.resolved", incident)

    def clear(self) -> None:
        self.incidents.clear()
        self._open.clear()

    def _notify(self, event_type: str, incident: Incident) -> None:
        for listener in list(self.listeners):
            listener(event_type, incident)

    def _trim(self) -> None:
        excess = len(self.incidents) - MAX_INCIDENTS
        if excess <= 0:
            return
        # Oldest first; resolved ones are normally the oldest, so the scan stops early.
        resolved = (i for i in self.incidents.values() if i.status == "resolved")
        victims = list(islice(resolved, excess)) or list(islice(self.incidents.values(), excess))
        for incident in victims:
            del self.incidents[incident.id]
            key = (incident.routing_key, incident.incident_key)
            if self._open.get(key) == incident.id:
                del self._open[key]
