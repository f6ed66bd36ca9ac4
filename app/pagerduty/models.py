"""What the REST API v2 returns, reduced to what pdconnect uses.

Each `from_wire` reads one JSON object from PagerDuty and raises `MalformedResponse` naming
the field it could not use. Secrets (integration keys, webhook secrets) stay out of repr().
"""

from dataclasses import dataclass, field
from typing import Self

from app.pagerduty._wire import (
    as_list,
    as_object,
    optional_object,
    optional_str,
    required_str,
)


def _reference_id(value: object, where: str) -> str:
    return required_str(as_object(value, where), "id", where)


@dataclass(frozen=True)
class EscalationPolicy:
    id: str
    name: str

    @classmethod
    def from_wire(cls, value: object, where: str = "escalation_policy") -> Self:
        obj = as_object(value, where)
        policy_id = required_str(obj, "id", where)
        # A full object has `name`; a reference carries the name as `summary`.
        name = optional_str(obj, "name", where) or optional_str(obj, "summary", where)
        return cls(id=policy_id, name=name or policy_id)


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    summary: str
    html_url: str
    status: str
    escalation_policy_id: str | None
    escalation_policy_name: str | None
    integration_ids: tuple[str, ...]

    @classmethod
    def from_wire(cls, value: object, where: str = "service") -> Self:
        obj = as_object(value, where)
        service_id = required_str(obj, "id", where)
        name = optional_str(obj, "name", where) or optional_str(obj, "summary", where)
        policy = optional_object(obj, "escalation_policy", where)
        policy_where = f"{where}.escalation_policy"
        integrations = obj.get("integrations")
        integration_ids = tuple(
            _reference_id(item, f"{where}.integrations[{i}]")
            for i, item in enumerate(
                [] if integrations is None else as_list(integrations, f"{where}.integrations")
            )
        )
        return cls(
            id=service_id,
            name=name or service_id,
            summary=optional_str(obj, "summary", where) or name or service_id,
            html_url=optional_str(obj, "html_url", where) or "",
            status=optional_str(obj, "status", where) or "",
            escalation_policy_id=optional_str(policy, "id", policy_where),
            escalation_policy_name=optional_str(policy, "name", policy_where)
            or optional_str(policy, "summary", policy_where),
            integration_ids=integration_ids,
        )


@dataclass(frozen=True)
class Integration:
    id: str
    name: str
    service_id: str
    # None for integrations without a key (email, and others not made by us).
    integration_key: str | None = field(repr=False)
    type: str

    @classmethod
    def from_wire(cls, value: object, *, service_id: str, where: str = "integration") -> Self:
        """`service_id` is the service we asked about, used when the answer omits it."""
        obj = as_object(value, where)
        integration_id = required_str(obj, "id", where)
        service = optional_object(obj, "service", where)
        return cls(
            id=integration_id,
            name=optional_str(obj, "name", where)
            or optional_str(obj, "summary", where)
            or integration_id,
            service_id=optional_str(service, "id", f"{where}.service") or service_id,
            integration_key=optional_str(obj, "integration_key", where) or None,
            type=required_str(obj, "type", where),
        )


@dataclass(frozen=True)
class WebhookSubscription:
    id: str
    # The signing secret: PagerDuty shows it only in the answer that creates the subscription.
    secret: str = field(repr=False)
    url: str

    @classmethod
    def from_wire(cls, value: object, where: str = "webhook_subscription") -> Self:
        obj = as_object(value, where)
        delivery = as_object(obj.get("delivery_method"), f"{where}.delivery_method")
        return cls(
            id=required_str(obj, "id", where),
            secret=required_str(delivery, "secret", f"{where}.delivery_method"),
            url=required_str(delivery, "url", f"{where}.delivery_method"),
        )
