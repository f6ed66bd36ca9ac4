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

People act on incidents too (`acknowledge_incident` and the others, what a click in the web
app does): those changes name the acting user, and can also unacknowledge, reopen, escalate
and reassign. Every change is told to the `listeners` with PagerDuty's v3 webhook event type.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from itertools import islice
from typing import Any

from pdsandbox.timefmt import iso

MAX_INCIDENTS = 100_000  # the oldest resolved ones go first past this
MAX_LOG_ENTRIES = 100  # per incident; `log_entry_count` keeps the true number
MAX_NOTES = 2000  # createIncidentNote: "A maximum of 2000 notes can be added to an incident."
HIGH_URGENCY = ("critical", "error")  # v1 events carry no severity and page as high
WEB_CHANNEL = "website"  # the log entry channel of a change made in the web app

# (webhook event type, incident, id of the user who acted or None for automation)
Listener = Callable[[str, "Incident", str | None], None]
# (incident, the note added to it): `incident.annotated`, whose data is the note
NoteListener = Callable[["Incident", "Note"], None]


@dataclass(slots=True)
class Note:
    id: str
    user_id: str  # who wrote it: the user the `From` header named
    content: str
    created_at: float


@dataclass(slots=True)
class LogEntry:
    type: str  # "trigger_log_entry", "acknowledge_log_entry", "resolve_log_entry", ...
    at: float
    summary: str | None
    channel: str  # "events_api_v2", "events_api_v1" or "website"
    agent: str | None = None  # the user who acted, for changes made by hand

    def as_json(self) -> dict[str, Any]:
        agent = {"id": self.agent, "type": "user_reference"} if self.agent else None
        return {
            "type": self.type,
            "created_at": iso(self.at),
            "summary": self.summary,
            "channel": {"type": self.channel},
            "agent": agent,
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
    escalation_level: int = 1  # whose turn it is in the service's escalation policy
    assigned_to: str | None = None  # a user it was reassigned to, over the policy's choice
    # When it was last (re)assigned: created, escalated, reassigned or reopened.
    assigned_at: float | None = None
    acknowledged_by: str | None = None  # the user; None: through its integration
    # The last status change and who made it (None: its integration, i.e. the Events API).
    status_changed_at: float | None = None
    status_changed_by: str | None = None
    updated_at: float | None = None
    log_entries: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=MAX_LOG_ENTRIES))
    log_entry_count: int = 0
    notes: list[Note] = field(default_factory=list)

    def log(self, entry: LogEntry) -> None:
        self.log_entries.append(entry)
        self.log_entry_count += 1
        self.updated_at = entry.at

    def status_changed(self, status: str, at: float, agent: str | None) -> None:
        self.status, self.status_changed_at, self.status_changed_by = status, at, agent


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
        # Told of each change, so webhooks back to the product can hang off the book.
        self.listeners: list[Listener] = []
        self.note_listeners: list[NoteListener] = []

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
            assigned_at=now,
            status_changed_at=now,
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
        if incident.status != "triggered":  # logged, but it changes nothing
            incident.log(LogEntry("acknowledge_log_entry", now, None, channel))
            return
        self._acknowledge(incident, now, channel, None)

    def resolve(self, routing_key: str, dedup_key: str, now: float, channel: str) -> None:
        incident = self.open_incident(routing_key, dedup_key)
        if incident is not None:
            self._resolve(incident, now, channel, None)

    # By hand. Each returns the event type it caused, or None when the incident is not in a
    # state the action applies to (the web app would not offer the button).

    def acknowledge_incident(self, incident: Incident, now: float, agent: str) -> str | None:
        if incident.status != "triggered":
            return None
        return self._acknowledge(incident, now, WEB_CHANNEL, agent)

    def resolve_incident(self, incident: Incident, now: float, agent: str) -> str | None:
        if incident.status == "resolved":
            return None
        return self._resolve(incident, now, WEB_CHANNEL, agent)

    def unacknowledge_incident(self, incident: Incident, now: float, agent: str) -> str | None:
        if incident.status != "acknowledged":
            return None
        incident.status_changed("triggered", now, agent)
        incident.acknowledged_at = incident.acknowledged_by = None
        return self._changed(
            incident, "unacknowledge_log_entry", "incident.unacknowledged", now, agent
        )

    def reopen_incident(self, incident: Incident, now: float, agent: str) -> str | None:
        if incident.status != "resolved":
            return None
        self._retrigger(incident, now, agent, level=1, assignee=None)
        incident.resolved_at = None
        # Follow-up events reach it again, unless a newer alert has taken its key meanwhile.
        self._open.setdefault((incident.routing_key, incident.incident_key), incident.id)
        return self._changed(incident, "reopen_log_entry", "incident.reopened", now, agent)

    def escalate_incident(
        self, incident: Incident, now: float, agent: str, level: int
    ) -> str | None:
        if incident.status == "resolved":
            return None
        self._retrigger(incident, now, agent, level=level, assignee=None)
        return self._changed(incident, "escalate_log_entry", "incident.escalated", now, agent)

    def reassign_incident(
        self, incident: Incident, now: float, agent: str, assignee: str
    ) -> str | None:
        if incident.status == "resolved":
            return None
        self._retrigger(incident, now, agent, level=incident.escalation_level, assignee=assignee)
        return self._changed(incident, "assign_log_entry", "incident.reassigned", now, agent)

    def add_note(self, incident: Incident, user_id: str, content: str, now: float) -> Note:
        """A note on the incident (the caller checks `MAX_NOTES`), told to the note
        listeners for `incident.annotated`."""
        note = Note(self._new_id(), user_id, content, now)
        incident.notes.append(note)
        incident.updated_at = now
        for listener in list(self.note_listeners):
            listener(incident, note)
        return note

    def clear(self) -> None:
        self.incidents.clear()
        self._open.clear()

    def snapshot(self) -> dict[str, Any]:
        """Incidents (with their log entries), the open alerts' keys and each account's last
        incident number, as JSON-ready data for the state file."""
        return {
            "incidents": [_incident_data(i) for i in self.incidents.values()],
            "open": [[rk, dk, iid] for (rk, dk), iid in self._open.items()],
            "numbers": dict(self._numbers),
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.incidents = {}
        for raw in data["incidents"]:
            incident = _incident_from(raw)
            self.incidents[incident.id] = incident
        self._open = {(rk, dk): iid for rk, dk, iid in data["open"]}
        self._numbers = {k: int(v) for k, v in data["numbers"].items()}

    def _acknowledge(self, incident: Incident, now: float, channel: str, agent: str | None) -> str:
        incident.status_changed("acknowledged", now, agent)
        incident.acknowledged_at, incident.acknowledged_by = now, agent
        return self._changed(
            incident, "acknowledge_log_entry", "incident.acknowledged", now, agent, channel
        )

    def _resolve(self, incident: Incident, now: float, channel: str, agent: str | None) -> str:
        incident.status_changed("resolved", now, agent)
        incident.resolved_at = now
        key = (incident.routing_key, incident.incident_key)
        if self._open.get(key) == incident.id:
            del self._open[key]
        return self._changed(
            incident, "resolve_log_entry", "incident.resolved", now, agent, channel
        )

    @staticmethod
    def _retrigger(
        incident: Incident, now: float, agent: str, *, level: int, assignee: str | None
    ) -> None:
        # Escalating or reassigning pages someone anew, so an acknowledgement is undone.
        if incident.status != "triggered":
            incident.status_changed("triggered", now, agent)
        incident.acknowledged_at = incident.acknowledged_by = None
        incident.escalation_level, incident.assigned_to = level, assignee
        incident.assigned_at = now

    def _changed(
        self,
        incident: Incident,
        entry_type: str,
        event_type: str,
        now: float,
        agent: str | None,
        channel: str = WEB_CHANNEL,
    ) -> str:
        incident.log(LogEntry(entry_type, now, None, channel, agent))
        self._notify(event_type, incident, agent)
        return event_type

    def _notify(self, event_type: str, incident: Incident, agent: str | None = None) -> None:
        for listener in list(self.listeners):
            listener(event_type, incident, agent)

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


def _incident_data(incident: Incident) -> dict[str, Any]:
    data = {f.name: getattr(incident, f.name) for f in fields(Incident)}
    data["log_entries"] = [asdict(e) for e in incident.log_entries]
    data["notes"] = [asdict(n) for n in incident.notes]
    return data


def _incident_from(raw: dict[str, Any]) -> Incident:
    known = {f.name for f in fields(Incident)} - {"log_entries", "notes"}
    incident = Incident(**{k: v for k, v in raw.items() if k in known})
    incident.log_entries.extend(LogEntry(**e) for e in raw.get("log_entries", []))
    incident.notes.extend(Note(**n) for n in raw.get("notes", []))
    return incident
