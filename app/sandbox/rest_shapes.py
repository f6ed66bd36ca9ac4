"""PagerDuty's JSON shapes for the objects the REST API returns.

`self` links use the API base of the object's own region; `html_url` links point into the
sandbox's web pages as `https://<subdomain>.pagerduty.com/...` would.
"""

from __future__ import annotations

from typing import Any

from app.sandbox.models import (
    Account,
    EscalationPolicy,
    Integration,
    Service,
    User,
    WebhookSubscription,
)
from app.sandbox.state import SandboxState
from app.sandbox.timefmt import iso

__all__ = ["Shapes", "iso"]


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

    def service(self, service: Service, *, include_integrations: bool) -> dict[str, Any]:
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
            "status": "active",
            "last_incident_timestamp": None,
            "alert_creation": "create_alerts_and_incidents",
            "alert_grouping_parameters": {"type": None},
            "incident_urgency_rule": {"type": "constant", "urgency": "high"},
            "support_hours": None,
            "scheduled_actions": [],
            "teams": [],
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
                "custom_headers": [{"name": n, "value": v} for n, v in sub.custom_headers],
                "temporarily_disabled": not active,
                # Shown once, in the answer to the create call, as PagerDuty does.
                "secret": sub.secret if reveal_secret else None,
            },
            "events": list(sub.events),
            "filter": {"type": sub.filter_type, "id": sub.filter_id},
        }
