"""The bodies of PagerDuty's v3 webhooks: one event per delivery.

Shapes follow PagerDuty's developer documentation ("Webhooks v3 Overview": Webhook Payload,
and Event Data Types `incident` and `service`):

    {"event": {"id", "event_type", "resource_type", "occurred_at", "agent", "client", "data"}}

- `occurred_at` carries milliseconds, as in PagerDuty's examples.
- `agent` is a `user_reference` when a person acted and null for automation (an Events API
  event); `client` is `{"name": "PagerDuty"}` for a change made in the web app, as in
  PagerDuty's `incident.priority_updated` example, and null otherwise.
- `data` for incidents is the incident at the moment of the change; for `service.*` events it
  is the service object of the "service" data type.
- `incident.annotated` carries the note, as the `incident_note` data type: `{"incident": an
  incident_reference, "id", "content", "trimmed": false, "type": "incident_note"}`, with the
  note's author as `agent`. The documents do not say past what length `content` is trimmed;
  the sandbox sends it whole.
- `pagey.ping` is the test event that PagerDuty's "Send Test Event" button and its REST
  `POST /webhook_subscriptions/{id}/ping` ("Test a webhook subscription") deliver. PagerDuty's
  documents name it but do not show its body; this is the body PagerDuty sends, as receivers
  record it: `resource_type` "pagey", no `agent` nor `client`, and `data` with no `id`:
  `{"message": "Hello from your friend Pagey!", "type": "ping"}`.
"""

from __future__ import annotations

from typing import Any

from pdsandbox import ids
from pdsandbox.events.incidents import Incident, Note
from pdsandbox.models import Service
from pdsandbox.rest.shapes import Shapes
from pdsandbox.state import SandboxState
from pdsandbox.timefmt import iso, iso_ms

WEB_CLIENT = {"name": "PagerDuty"}
PING_EVENT_TYPE = "pagey.ping"
PING_DATA = {"message": "Hello from your friend Pagey!", "type": "ping"}


class WebhookPayloads:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.shapes = Shapes(state)

    def incident_event(
        self, event_type: str, incident: Incident, agent: str | None
    ) -> dict[str, Any]:
        return self._event(event_type, "incident", agent, self.incident(incident))

    def note_event(self, incident: Incident, note: Note) -> dict[str, Any]:
        data = {
            "incident": self.shapes.incident_ref(incident),
            "id": note.id,
            "content": note.content,
            "trimmed": False,
            "type": "incident_note",
        }
        return self._event("incident.annotated", "incident", note.user_id, data)

    def service_event(self, event_type: str, service: Service, agent: str | None) -> dict[str, Any]:
        return self._event(event_type, "service", agent, self.service(service))

    def ping_event(self) -> dict[str, Any]:
        return self._event(PING_EVENT_TYPE, "pagey", None, dict(PING_DATA))

    def incident(self, incident: Incident) -> dict[str, Any]:
        state, shapes = self.state, self.shapes
        service = state.services.get(incident.service_id)
        policy = state.policies.get(service.escalation_policy_id) if service else None
        return {
            "id": incident.id,
            "type": "incident",
            **shapes.links(incident.account_id, f"incidents/{incident.id}"),
            "number": incident.number,
            "status": incident.status,
            "incident_key": incident.incident_key,
            "created_at": iso(incident.created_at),
            "title": incident.title,
            "service": (
                shapes.service_ref(service)
                if service is not None
                else {"id": incident.service_id, "type": "service_reference", "summary": None}
            ),
            "assignees": [shapes.user_ref(u) for u in state.assignees_of(incident)],
            "escalation_policy": shapes.policy_ref(policy) if policy is not None else None,
            "teams": [],  # the sandbox has no teams
            "priority": None,  # nor priorities
            "urgency": incident.urgency,
            "conference_bridge": None,
            "resolve_reason": None,
        }

    def service(self, service: Service) -> dict[str, Any]:
        return self.shapes.service_ref(service) | {
            "type": "service",
            "summary": service.name,
            "alert_creation": "create_alerts_and_incidents",
            "teams": [],
        }

    def _event(
        self, event_type: str, resource_type: str, agent: str | None, data: dict[str, Any]
    ) -> dict[str, Any]:
        user = self.state.users.get(agent) if agent is not None else None
        return {
            "event": {
                "id": ids.uuid4(self.state.rng),
                "event_type": event_type,
                "resource_type": resource_type,
                "occurred_at": iso_ms(self.state.now()),
                "agent": self.shapes.user_ref(user) if user is not None else None,
                "client": dict(WEB_CLIENT) if user is not None else None,
                "data": data,
            }
        }
