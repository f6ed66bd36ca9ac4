"""The sandbox's PagerDuty objects, as plain frozen records.

The state keeps them in dicts and swaps in a changed copy (`dataclasses.replace`) when one
changes, so a value handed out never changes under its holder.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Region(StrEnum):
    US = "us"
    EU = "eu"

    @property
    def claim(self) -> str:
        """The id_token `region` claim PagerDuty uses for this service region."""
        return "UnitedStates" if self is Region.US else "EuropeanUnion"

    @property
    def label(self) -> str:
        return self.value.upper()


@dataclass(frozen=True)
class Account:
    id: str
    subdomain: str
    name: str
    region: Region


@dataclass(frozen=True)
class User:
    id: str
    account_id: str
    name: str
    email: str


@dataclass(frozen=True)
class EscalationPolicy:
    id: str
    account_id: str
    name: str
    description: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True)
class Service:
    id: str
    account_id: str
    name: str
    description: str
    escalation_policy_id: str
    created_at: float


@dataclass(frozen=True)
class Integration:
    id: str
    account_id: str
    service_id: str
    type: str  # e.g. "events_api_v2_inbound_integration"
    name: str
    integration_key: str
    created_at: float
    created_by: str | None  # client_id or app_id of the app that made it; None if seeded


@dataclass(frozen=True)
class Ruleset:
    """A global or team event ruleset: Simple Install can hand out its routing key."""

    id: str
    account_id: str
    name: str
    type: str  # "global_rule_set" or "team_rule_set", as the install config spells it
    routing_key: str


@dataclass(frozen=True)
class WebhookSubscription:
    id: str
    account_id: str
    client_id: str
    url: str
    events: tuple[str, ...]
    filter_type: str
    filter_id: str | None
    description: str
    custom_headers: tuple[tuple[str, str], ...]
    secret: str
    created_at: float
    # During a secret rotation deliveries are signed with both secrets, so a receiver can
    # switch over without losing any; None for "until the rotation is finished by hand".
    previous_secret: str | None = None
    previous_secret_until: float | None = None
    # Set after 3 consecutive dropped deliveries, as PagerDuty does for 24 hours.
    disabled_until: float | None = None

    def active_at(self, now: float) -> bool:
        return self.disabled_until is None or now >= self.disabled_until

    def secrets_at(self, now: float) -> tuple[str, ...]:
        """The secrets deliveries are signed with now, the newest first."""
        if self.previous_secret is None:
            return (self.secret,)
        if self.previous_secret_until is not None and now >= self.previous_secret_until:
            return (self.secret,)
        return (self.secret, self.previous_secret)


@dataclass(frozen=True)
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    scope: str  # what was granted, e.g. "openid write"
    code_challenge: str | None
    issued_at: float
    grant_id: str | None = None  # set when redeemed, so a replay can revoke what it gave


@dataclass(frozen=True)
class Grant:
    """One user's authorization of one app: every token it yields dies with it."""

    id: str  # the id_token's `delegation_id`
    client_id: str
    user_id: str
    account_id: str
    scope: str
    created_at: float
    revoked: bool = False


@dataclass(frozen=True)
class IssuedToken:
    value: str
    kind: str  # "access" or "refresh"
    grant_id: str
    issued_at: float
    expires_at: float
    rotated: bool = False  # a refresh token that has been exchanged already

    def usable(self, now: float) -> bool:
        return not self.rotated and now < self.expires_at
