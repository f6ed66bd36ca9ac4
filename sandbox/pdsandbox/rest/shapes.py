"""PagerDuty's JSON shapes for the objects the REST API returns.

`self` links use the API base of the object's own region; `html_url` links point into the
sandbox's web pages as `https://<subdomain>.pagerduty.com/...` would.

Where PagerDuty's OpenAPI document (`reference/REST/openapiv3.json` in PagerDuty/api-schema)
types a member as non-nullable but PagerDuty's real answers send null (`support_hours`,
`last_incident_timestamp` before any incident, `vendor` of an integration made by API), the
sandbox sends null as PagerDuty does, so clients meet the null they will meet in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pdsandbox.events.incidents import Incident, Note
from pdsandbox.models import (
    Account,
    EscalationPolicy,
    EscalationTarget,
    Integration,
    Schedule,
    Service,
    Shift,
    User,
    WebhookSubscription,
)
from pdsandbox.state import SandboxState
from pdsandbox.timefmt import iso

__all__ = ["ServiceActivity", "Shapes", "iso"]

# IncidentNote's `channel` for a note made through the REST API, as in the document's example.
NOTE_CHANNEL = {"summary": "The PagerDuty website or APIs"}
# What PagerDuty puts in a custom header's `value` when it shows a webhook subscription: the
# document says values are redacted in answers, and its examples write this text.
REDACTED_HEADER_VALUE = "-- redacted --"


@dataclass(frozen=True)
class ServiceActivity:
    """A service's `status` and `last_incident_timestamp`, as its incidents make them."""

    status: str = "active"
    last_incident_at: float | None = None


class Shapes:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _account(self, account_id: str) -> Account:
        return self.state.accounts[account_id]

    def _api(self, account_id: str) -> str:
        return self.state.config.api_url(self._account(account_id).region.value)

    def _web(self, account_id: str) -> str:
        return f"{self.state.config.web_url}/{self._account(account_id).subdomain}"

    def links(self, account_id: str, path: str) -> dict[str, str]:
        """The `self` and `html_url` of the account's object at `path`, e.g. "incidents/P1"."""
        return {
            "self": f"{self._api(account_id)}/{path}",
            "html_url": f"{self._web(account_id)}/{path}",
        }

    def user_ref(self, user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "type": "user_reference",
            "summary": user.name,
            **self.links(user.account_id, f"users/{user.id}"),
        }

    def user(self, user: User) -> dict[str, Any]:
        """The User schema; the sandbox's users are all admins in UTC with no contact
        methods, notification rules nor teams."""
        return self.user_ref(user) | {
            "type": "user",
            "name": user.name,
            "email": user.email,
            "time_zone": "Etc/UTC",
            "color": "green",
            "role": "admin",
            "avatar_url": "https://pd-static-assets.pagerduty.com/users/blank-avatar.png",
            "description": None,
            "invitation_sent": False,
            "job_title": None,
            "created_via_sso": False,
            "contact_methods": [],
            "notification_rules": [],
            "teams": [],
        }

    def schedule_ref(self, schedule: Schedule) -> dict[str, Any]:
        return {
            "id": schedule.id,
            "type": "schedule_reference",
            "summary": schedule.name,
            **self.links(schedule.account_id, f"schedules/{schedule.id}"),
        }

    def incident_ref(self, incident: Incident) -> dict[str, Any]:
        return {
            "id": incident.id,
            "type": "incident_reference",
            "summary": incident.title,
            **self.links(incident.account_id, f"incidents/{incident.id}"),
        }

    def service_ref(self, service: Service) -> dict[str, Any]:
        return {
            "id": service.id,
            "type": "service_reference",
            "summary": service.name,
            "self": f"{self._api(service.account_id)}/services/{service.id}",
            "html_url": f"{self._web(service.account_id)}/service-directory/{service.id}",
        }

    def policy_ref(self, policy: EscalationPolicy) -> dict[str, Any]:
        return {
            "id": policy.id,
            "type": "escalation_policy_reference",
            "summary": policy.name,
            "self": f"{self._api(policy.account_id)}/escalation_policies/{policy.id}",
            "html_url": f"{self._web(policy.account_id)}/escalation_policies/{policy.id}",
        }

    def integration(self, integration: Integration, *, as_reference: bool) -> dict[str, Any]:
        service = self.state.services[integration.service_id]
        path = f"services/{service.id}/integrations/{integration.id}"
        shape: dict[str, Any] = {
            "id": integration.id,
            "type": integration.type + ("_reference" if as_reference else ""),
            "summary": integration.name,
            "self": f"{self._api(integration.account_id)}/{path}",
            "html_url": f"{self._web(integration.account_id)}/{path}",
        }
        if not as_reference:
            shape |= {
                "name": integration.name,
                "service": self.service_ref(service),
                "created_at": iso(integration.created_at),
                "vendor": None,
                "integration_key": integration.integration_key,
            }
        return shape

    def activity(self) -> dict[str, ServiceActivity]:
        """Every service's activity, from one pass over the incidents.

        The Service schema's `status`: "critical" while one of its incidents is triggered,
        "warning" while one is acknowledged and none triggered, else "active" (maintenance and
        disabled services do not exist in the sandbox)."""
        found: dict[str, ServiceActivity] = {}
        for incident in self.state.incidents.incidents.values():
            seen = found.get(incident.service_id, ServiceActivity())
            status = seen.status
            if incident.status == "triggered":
                status = "critical"
            elif incident.status == "acknowledged" and status != "critical":
                status = "warning"
            last = incident.created_at
            if seen.last_incident_at is not None:
                last = max(last, seen.last_incident_at)
            found[incident.service_id] = ServiceActivity(status, last)
        return found

    def service(
        self,
        service: Service,
        *,
        include_integrations: bool,
        activity: ServiceActivity | None = None,
    ) -> dict[str, Any]:
        """`activity` is passed by lists, which compute it once for every service."""
        if activity is None:
            activity = self.activity().get(service.id, ServiceActivity())
        last = activity.last_incident_at
        policy = self.state.policies[service.escalation_policy_id]
        integrations = [
            self.integration(i, as_reference=not include_integrations)
            for i in self.state.integrations_of(service.id)
        ]
        return self.service_ref(service) | {
            "type": "service",
            "name": service.name,
            "description": service.description,
            "auto_resolve_timeout": 14400,
            "acknowledgement_timeout": 1800,
            "created_at": iso(service.created_at),
            "status": activity.status,
            "last_incident_timestamp": iso(last) if last is not None else None,
            "alert_creation": "create_alerts_and_incidents",
            "alert_grouping_parameters": {"type": None},
            "incident_urgency_rule": {"type": "constant", "urgency": "high"},
            "support_hours": None,
            "scheduled_actions": [],
            "teams": [],
            "addons": [],
            "integrations": integrations,
            "escalation_policy": self.policy_ref(policy),
        }

    def target_ref(self, target: EscalationTarget) -> dict[str, Any]:
        if target.type == "user":
            return self.user_ref(self.state.users[target.id])
        return self.schedule_ref(self.state.schedules[target.id])

    def policy(self, policy: EscalationPolicy) -> dict[str, Any]:
        rules = [
            {
                "id": rule.id,
                "escalation_delay_in_minutes": rule.delay_minutes,
                "targets": [self.target_ref(t) for t in rule.targets],
            }
            for rule in policy.rules
        ]
        services = [
            self.service_ref(s)
            for s in self.state.services_in(policy.account_id)
            if s.escalation_policy_id == policy.id
        ]
        return self.policy_ref(policy) | {
            "type": "escalation_policy",
            "name": policy.name,
            "description": policy.description,
            "num_loops": 0,
            "on_call_handoff_notifications": "if_has_services",
            "escalation_rules": rules,
            "services": services,
            "teams": [],
        }

    def webhook_subscription(
        self, sub: WebhookSubscription, *, reveal_secret: bool
    ) -> dict[str, Any]:
        # PagerDuty marks a subscription it disabled after failed deliveries through
        # `temporarily_disabled`; `active` follows it as well as the owner's switch, so
        # either check sees it (see `pdsandbox.rest.webhook_subscriptions`).
        now = self.state.now()
        active = sub.active_at(now)
        return {
            "id": sub.id,
            "type": "webhook_subscription",
            "active": active,
            "description": sub.description,
            "delivery_method": {
                "id": f"D{sub.id[1:]}",
                "type": "http_delivery_method",
                "url": sub.url,
                "custom_headers": [
                    {"name": name, "value": REDACTED_HEADER_VALUE} for name, _ in sub.custom_headers
                ],
                "temporarily_disabled": sub.temporarily_disabled_at(now),
                # Shown once, in the answer to the create call, as PagerDuty does.
                "secret": sub.secret if reveal_secret else None,
            },
            "events": list(sub.events),
            "filter": {"type": sub.filter_type, "id": sub.filter_id},
        }

    # Schedules and on-call.

    def shift(self, shift: Shift) -> dict[str, Any]:
        """A ScheduleLayerEntry."""
        return {
            "start": iso(shift.start),
            "end": iso(shift.end),
            "user": self.user_ref(self.state.users[shift.user_id]),
        }

    def schedule(
        self, schedule: Schedule, *, window: tuple[float, float] | None, detailed: bool
    ) -> dict[str, Any]:
        """The Schedule schema. `window` (since, until) renders its entries, as the document
        says they are only "populated" when since or until is set; without one they are
        empty and the coverage null. `detailed` adds the layers and subschedules, which
        `GET /schedules/{id}` shows and the list leaves out."""
        policies = [
            self.policy_ref(p)
            for p in self.state.policies_in(schedule.account_id)
            if any(t.id == schedule.id for rule in p.rules for t in rule.targets)
        ]
        shape = self.schedule_ref(schedule) | {
            "type": "schedule",
            "name": schedule.name,
            "description": schedule.description,
            "time_zone": schedule.time_zone,
            "escalation_policies": policies,
            "users": [self.user_ref(self.state.users[u]) for u in schedule.user_ids],
            "teams": [],
        }
        if not detailed:
            return shape
        layers = []
        for layer in schedule.layers:
            entries = layer.shifts(*window) if window is not None else []
            layers.append(
                {
                    "id": layer.id,
                    "name": layer.name,
                    "start": iso(layer.start),
                    "end": None,
                    "rotation_virtual_start": iso(layer.rotation_virtual_start),
                    "rotation_turn_length_seconds": layer.turn_length_seconds,
                    "users": [{"user": self.user_ref(self.state.users[u])} for u in layer.user_ids],
                    "restrictions": [],
                    "rendered_schedule_entries": [self.shift(e) for e in entries],
                    "rendered_coverage_percentage": _coverage(entries, window),
                }
            )
        final = schedule.shifts(*window) if window is not None else []
        return shape | {
            "schedule_layers": layers,
            "overrides_subschedule": {
                "name": "Overrides",
                "rendered_schedule_entries": [],
                "rendered_coverage_percentage": 0.0 if window is not None else None,
            },
            "final_schedule": {
                "name": "Final Schedule",
                "rendered_schedule_entries": [self.shift(e) for e in final],
                "rendered_coverage_percentage": _coverage(final, window),
            },
        }

    # Incidents.

    def incident(self, incident: Incident) -> dict[str, Any]:
        """The Incident schema, as GET /incidents and GET /incidents/{id} answer it. The
        sandbox has no priorities, teams, conference bridges nor pending actions (its
        services do not auto-resolve or time out acknowledgements); one alert per incident."""
        state = self.state
        service = state.services.get(incident.service_id)
        policy = state.policy_of_service(incident.service_id)
        resolved = incident.status == "resolved"
        assigned_at = iso(incident.assigned_at or incident.created_at)
        acknowledgements = []
        if incident.status == "acknowledged":
            acknowledgements.append(
                {
                    "at": iso(incident.acknowledged_at or incident.created_at),
                    "acknowledger": self._agent(incident, incident.acknowledged_by),
                }
            )
        changed_at = incident.status_changed_at or incident.created_at
        return {
            "id": incident.id,
            "type": "incident",
            "summary": f"[#{incident.number}] {incident.title}",
            **self.links(incident.account_id, f"incidents/{incident.id}"),
            "incident_number": incident.number,
            "title": incident.title,
            "created_at": iso(incident.created_at),
            "updated_at": iso(incident.updated_at or incident.created_at),
            "status": incident.status,
            "incident_key": incident.incident_key,
            "service": (
                self.service_ref(service)
                if service is not None
                else {"id": incident.service_id, "type": "service_reference", "summary": None}
            ),
            "assignments": [
                {"at": assigned_at, "assignee": self.user_ref(u)}
                for u in state.assignees_of(incident)
            ],
            "assigned_via": (
                "direct_assignment" if incident.assigned_to is not None else "escalation_policy"
            ),
            "last_status_change_at": iso(changed_at),
            "last_status_change_by": self._agent(incident, incident.status_changed_by),
            "resolved_at": iso(incident.resolved_at) if incident.resolved_at is not None else None,
            "alert_counts": {
                "all": 1,
                "triggered": 0 if resolved else 1,
                "resolved": 1 if resolved else 0,
            },
            "is_mergeable": True,
            "incident_type": {"name": "incident_default"},
            "escalation_policy": self.policy_ref(policy) if policy is not None else None,
            "teams": [],
            "pending_actions": [],
            "acknowledgements": acknowledgements,
            "priority": None,
            "resolve_reason": None,
            "urgency": incident.urgency,
        }

    def _agent(self, incident: Incident, user_id: str | None) -> dict[str, Any]:
        """Who acted: the user, or for the Events API the service the event came in through
        (an AgentReference may be a user's, a service's or an integration's)."""
        user = self.state.users.get(user_id) if user_id is not None else None
        if user is not None:
            return self.user_ref(user)
        service = self.state.services.get(incident.service_id)
        if service is not None:
            return self.service_ref(service)
        return {"id": incident.service_id, "type": "service_reference", "summary": None}

    def note(self, note: Note) -> dict[str, Any]:
        """IncidentNote; notes cannot be edited through the API, so `updated_at` is when it
        was made."""
        user = self.state.users.get(note.user_id)
        return {
            "id": note.id,
            "user": self.user_ref(user) if user is not None else None,
            "channel": dict(NOTE_CHANNEL),
            "content": note.content,
            "created_at": iso(note.created_at),
            "updated_at": iso(note.created_at),
        }


def _coverage(shifts: list[Shift], window: tuple[float, float] | None) -> float | None:
    """The share of the window the shifts cover, in percent (null without a window)."""
    if window is None:
        return None
    since, until = window
    if until <= since:
        return 100.0 if shifts else 0.0
    covered = sum(max(0.0, min(s.end, until) - max(s.start, since)) for s in shifts)
    return round(100.0 * covered / (until - since), 2)
