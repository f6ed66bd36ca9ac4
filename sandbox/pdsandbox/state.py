"""Everything a running sandbox knows, in memory: accounts and their objects, OAuth grants,
Events API arrivals and the incidents they opened, the clock, and the switches tests flip
through the control endpoints.

Handlers never await between reading and writing it, so one event loop keeps it consistent
without locks.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pdsandbox import ids
from pdsandbox.config import SandboxConfig
from pdsandbox.controls.faults import FaultBook
from pdsandbox.events.arrivals import ArrivalLog
from pdsandbox.events.incidents import Incident, IncidentBook
from pdsandbox.events.ratelimit import SlidingWindowLimiter
from pdsandbox.identity.keys import SigningKeys
from pdsandbox.identity.oauth_store import OAuthStore
from pdsandbox.models import (
    Account,
    EscalationPolicy,
    EscalationRule,
    Integration,
    Ruleset,
    Schedule,
    Service,
    Shift,
    User,
    WebhookSubscription,
)
from pdsandbox.rest.seed import build_seed

REST_RATE_LIMIT_PER_MINUTE = 960  # per app per account, as PagerDuty documents
EVENTS_RATE_LIMIT_PER_MINUTE = 120  # per routing key: "approximately 120 calls/minute"
_NORMAL, _ROGUE = "normal", "rogue"

# (webhook event type, the service as it was, id of the user who acted or None)
ServiceListener = Callable[[str, Service, str | None], None]


@dataclass
class Controls:
    """Behaviour switches for tests; see `pdsandbox.controls.switches`."""

    id_token_key: str = _NORMAL  # "rogue": sign id_tokens with a key missing from the JWKS
    # PagerDuty documents no revoke endpoint, so `POST /oauth/revoke` answers 404 like any
    # unknown path; "present" serves RFC 7009 revocation for tests that want it.
    revoke_endpoint: str = "absent"
    install_name_spelling: str = "Name"  # PagerDuty's own example writes account "Name"
    rest_rate_limit: int = REST_RATE_LIMIT_PER_MINUTE
    # A well-formed key no integration has: "reject" answers 400 "Invalid routing key" (one
    # user saw that), "accept" answers 202 and drops the event (PagerDuty may do that for a
    # deleted key). Rejecting is the default so that a lost key shows in tests.
    unknown_key_response: str = "reject"
    default_rate_limit: int = EVENTS_RATE_LIMIT_PER_MINUTE  # Events API, per routing key
    rate_limits: dict[str, int] = field(default_factory=dict)  # per-key overrides

    def events_rate_limit(self, routing_key: str) -> int:
        return self.rate_limits.get(routing_key, self.default_rate_limit)

    @property
    def rogue_id_tokens(self) -> bool:
        return self.id_token_key == _ROGUE

    @property
    def serves_revoke(self) -> bool:
        return self.revoke_endpoint == "present"


class SandboxState:
    def __init__(self, config: SandboxConfig, clock: Callable[[], float] | None = None) -> None:
        self.config = config
        self._clock = clock or time.time
        self.clock_offset = 0.0
        self.controls = Controls()
        self.rng: random.Random = ids.system_random
        self.keys = SigningKeys()
        self.oauth = OAuthStore(
            self.now, config.access_token_lifetime, config.refresh_token_lifetime
        )
        self.rest_limiter = SlidingWindowLimiter()
        # Events API: the per-key window, what arrived, what it opened, what goes wrong.
        self.events_limiter = SlidingWindowLimiter()
        self.arrivals = ArrivalLog()
        self.faults = FaultBook()
        # Injected latency and held requests wait here; tests may swap in a recorder.
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

        seed = build_seed()
        self.accounts: dict[str, Account] = {a.id: a for a in seed.accounts}
        self.users: dict[str, User] = {u.id: u for u in seed.users}
        self.schedules: dict[str, Schedule] = {s.id: s for s in seed.schedules}
        self.policies: dict[str, EscalationPolicy] = {p.id: p for p in seed.policies}
        self.services: dict[str, Service] = {s.id: s for s in seed.services}
        self.integrations: dict[str, Integration] = {i.id: i for i in seed.integrations}
        self.rulesets: dict[str, Ruleset] = {r.id: r for r in seed.rulesets}
        self.webhook_subscriptions: dict[str, WebhookSubscription] = {}
        self.incidents = IncidentBook(self.new_id)
        # Told of "service.deleted" before the service goes, for webhooks.
        self.service_listeners: list[ServiceListener] = []
        # Told that something worth keeping changed (see `pdsandbox.persistence`).
        self.change_listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._clock() + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    def touch(self) -> None:
        """Something worth keeping changed. Requests that may change the state call it when
        they finish; changes made outside a request (a subscription disabled after failed
        deliveries) call it themselves."""
        for listener in list(self.change_listeners):
            listener()

    def tables(self) -> dict[str, dict[str, Any]]:
        """The state's record tables by name, each keyed by the records' ids."""
        return {
            "accounts": self.accounts,
            "users": self.users,
            "schedules": self.schedules,
            "policies": self.policies,
            "services": self.services,
            "integrations": self.integrations,
            "rulesets": self.rulesets,
            "webhook_subscriptions": self.webhook_subscriptions,
        }

    @staticmethod
    def record_types() -> dict[str, type[Any]]:
        return {
            "accounts": Account,
            "users": User,
            "schedules": Schedule,
            "policies": EscalationPolicy,
            "services": Service,
            "integrations": Integration,
            "rulesets": Ruleset,
            "webhook_subscriptions": WebhookSubscription,
        }

    def new_id(self) -> str:
        taken = (
            self.accounts, self.users, self.schedules, self.policies, self.services,
            self.integrations, self.rulesets, self.webhook_subscriptions,
            self.incidents.incidents,
        )  # fmt: skip
        while any((value := ids.pd_id(self.rng)) in table for table in taken):
            pass
        return value

    # Reads, always within one account: another account's objects are never visible.

    def account_by_subdomain(self, subdomain: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.subdomain == subdomain), None)

    def account_of_user(self, user_id: str) -> str:
        return self.users[user_id].account_id

    def users_in(self, account_id: str) -> list[User]:
        return [u for u in self.users.values() if u.account_id == account_id]

    def user_in(self, account_id: str, user_id: str | None) -> User | None:
        """That user of the account or, with no id, its first user (who acts by default)."""
        if user_id is None:
            return next(iter(self.users_in(account_id)), None)
        user = self.users.get(user_id)
        return user if user is not None and user.account_id == account_id else None

    def assignees_of(self, incident: Incident) -> list[User]:
        """Who an incident is assigned to: whoever it was reassigned to, else whoever is on
        call now at its escalation level of its service's policy (each user target, and the
        on-call user of each schedule target). Resolved incidents have no assignees."""
        if incident.status == "resolved":
            return []
        if incident.assigned_to is not None:
            user = self.users.get(incident.assigned_to)
            return [user] if user is not None else []
        policy = self.policy_of_service(incident.service_id)
        if policy is None or not policy.rules:
            return []
        rule = policy.rules[(incident.escalation_level - 1) % len(policy.rules)]
        return self.on_call_at_level(rule, self.now())

    def policy_of_service(self, service_id: str) -> EscalationPolicy | None:
        service = self.services.get(service_id)
        return self.policies.get(service.escalation_policy_id) if service else None

    def on_call_at_level(self, rule: EscalationRule, at: float) -> list[User]:
        found: dict[str, User] = {}
        for target in rule.targets:
            if target.type == "user":
                user_id: str | None = target.id
            else:
                schedule = self.schedules.get(target.id)
                shift = schedule.shift_at(at) if schedule is not None else None
                user_id = shift.user_id if shift is not None else None
            if user_id is not None and user_id in self.users:
                found.setdefault(user_id, self.users[user_id])
        return list(found.values())

    def shift_at(self, schedule_id: str, at: float) -> Shift | None:
        schedule = self.schedules.get(schedule_id)
        return schedule.shift_at(at) if schedule is not None else None

    def user_by_email(self, account_id: str, email: str) -> User | None:
        wanted = email.strip().lower()
        return next((u for u in self.users_in(account_id) if u.email.lower() == wanted), None)

    def schedules_in(self, account_id: str, query: str | None = None) -> list[Schedule]:
        found = [s for s in self.schedules.values() if s.account_id == account_id]
        return sorted(_matching(found, query), key=lambda s: (s.name.lower(), s.id))

    def schedule_in(self, account_id: str, schedule_id: str) -> Schedule | None:
        schedule = self.schedules.get(schedule_id)
        return schedule if schedule is not None and schedule.account_id == account_id else None

    def incident_in(self, account_id: str, incident_id: str) -> Incident | None:
        incident = self.incidents.incidents.get(incident_id)
        return incident if incident is not None and incident.account_id == account_id else None

    def policies_in(self, account_id: str, query: str | None = None) -> list[EscalationPolicy]:
        found = [p for p in self.policies.values() if p.account_id == account_id]
        return sorted(_matching(found, query), key=lambda p: p.name.lower())

    def policy_in(self, account_id: str, policy_id: str) -> EscalationPolicy | None:
        policy = self.policies.get(policy_id)
        return policy if policy is not None and policy.account_id == account_id else None

    def services_in(self, account_id: str, query: str | None = None) -> list[Service]:
        """Sorted by name, PagerDuty's default order for the service list."""
        found = [s for s in self.services.values() if s.account_id == account_id]
        return sorted(_matching(found, query), key=lambda s: (s.name.lower(), s.id))

    def service_in(self, account_id: str, service_id: str) -> Service | None:
        service = self.services.get(service_id)
        return service if service is not None and service.account_id == account_id else None

    def service_named(self, account_id: str, name: str) -> Service | None:
        wanted = name.strip().lower()
        return next(
            (s for s in self.services_in(account_id) if s.name.strip().lower() == wanted), None
        )

    def integrations_of(self, service_id: str) -> list[Integration]:
        return [i for i in self.integrations.values() if i.service_id == service_id]

    def integration_in(
        self, account_id: str, service_id: str, integration_id: str
    ) -> Integration | None:
        found = self.integrations.get(integration_id)
        if found is None or found.account_id != account_id or found.service_id != service_id:
            return None
        return found

    def rulesets_in(self, account_id: str) -> list[Ruleset]:
        return [r for r in self.rulesets.values() if r.account_id == account_id]

    def webhook_subscription_in(
        self, account_id: str, subscription_id: str
    ) -> WebhookSubscription | None:
        found = self.webhook_subscriptions.get(subscription_id)
        return found if found is not None and found.account_id == account_id else None

    def find_routing_key(self, key: str) -> Integration | Ruleset | None:
        """The integration or ruleset an Events API routing key belongs to."""
        for integration in self.integrations.values():
            if integration.integration_key == key:
                return integration
        return next((r for r in self.rulesets.values() if r.routing_key == key), None)

    # Writes.

    def create_service(
        self, account_id: str, name: str, description: str, policy_id: str
    ) -> Service:
        service = Service(self.new_id(), account_id, name, description, policy_id, self.now())
        self.services[service.id] = service
        return service

    def delete_service(self, service_id: str, agent: str | None = None) -> None:
        service = self.services.pop(service_id, None)
        if service is not None:
            for listener in list(self.service_listeners):
                listener("service.deleted", service, agent)
        for integration in self.integrations_of(service_id):
            del self.integrations[integration.id]

    def create_integration(
        self, service: Service, type_: str, name: str, created_by: str | None
    ) -> Integration:
        integration = Integration(
            id=self.new_id(),
            account_id=service.account_id,
            service_id=service.id,
            type=type_,
            name=name,
            integration_key=ids.integration_key(self.rng),
            created_at=self.now(),
            created_by=created_by,
        )
        self.integrations[integration.id] = integration
        return integration

    def delete_integration(self, integration_id: str) -> None:
        self.integrations.pop(integration_id, None)

    def add_webhook_subscription(self, subscription: WebhookSubscription) -> None:
        self.webhook_subscriptions[subscription.id] = subscription

    def delete_webhook_subscription(self, subscription_id: str) -> None:
        self.webhook_subscriptions.pop(subscription_id, None)

    def update_webhook_subscription(
        self, subscription_id: str, changes: dict[str, Any]
    ) -> WebhookSubscription:
        """`changes` are field values of `WebhookSubscription` (checked by the caller)."""
        sub = self.webhook_subscriptions[subscription_id]
        return self._put_webhook(replace(sub, **changes))

    def rotate_webhook_secret(
        self, subscription_id: str, overlap_seconds: float | None
    ) -> WebhookSubscription:
        """A new secret; the old one keeps signing for `overlap_seconds` (None: until
        `finish_webhook_rotation`)."""
        sub = self.webhook_subscriptions[subscription_id]
        until = None if overlap_seconds is None else self.now() + overlap_seconds
        return self._put_webhook(
            replace(
                sub,
                secret=ids.webhook_secret(self.rng),
                previous_secret=sub.secret,
                previous_secret_until=until,
            )
        )

    def finish_webhook_rotation(self, subscription_id: str) -> WebhookSubscription:
        sub = self.webhook_subscriptions[subscription_id]
        return self._put_webhook(replace(sub, previous_secret=None, previous_secret_until=None))

    def set_webhook_disabled_until(
        self, subscription_id: str, until: float | None
    ) -> WebhookSubscription | None:
        sub = self.webhook_subscriptions.get(subscription_id)
        if sub is None:  # deleted while a delivery to it was under way
            return None
        changed = self._put_webhook(replace(sub, disabled_until=until))
        self.touch()  # also happens outside any request, after failed deliveries
        return changed

    def _put_webhook(self, changed: WebhookSubscription) -> WebhookSubscription:
        self.webhook_subscriptions[changed.id] = changed
        return changed


_Named = TypeVar("_Named", Service, EscalationPolicy, Schedule)


def _matching(items: list[_Named], query: str | None) -> list[_Named]:
    if not query:
        return items
    needle = query.lower()
    return [item for item in items if needle in item.name.lower()]
