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

from pdsandbox.models import (
    Account,
    EscalationPolicy,
    Integration,
    Service,
    User,
    WebhookSubscription,
)
from pdsandbox.state import SandboxState
from pdsandbox.timefmt import iso

__all__ = ["ServiceActivity", "Shapes", "iso"]

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

    def policy(self, policy: EscalationPolicy) -> dict[str, Any]:
        rules = [
            {
                "id": f"R{policy.id[1:]}{n}",
                "escalation_delay_in_minutes": 30,
                "targets": [self.user_ref(self.state.users[user_id])],
            }
            for n, user_id in enumerate(policy.user_ids)
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
        # `temporarily_disabled`; `active` follows it here so either check sees it.
        active = sub.active_at(self.state.now())
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
                "temporarily_disabled": not active,
                # Shown once, in the answer to the create call, as PagerDuty does.
                "secret": sub.secret if reveal_secret else None,
            },
            "events": list(sub.events),
            "filter": {"type": sub.filter_type, "id": sub.filter_id},
        }
