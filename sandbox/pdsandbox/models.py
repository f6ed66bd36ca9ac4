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
class EscalationTarget:
    type: str  # "user" or "schedule"
    id: str


@dataclass(frozen=True)
class EscalationRule:
    """One level of an escalation policy: who is paged, and how long before the next."""

    id: str
    delay_minutes: int
    targets: tuple[EscalationTarget, ...]


@dataclass(frozen=True)
class EscalationPolicy:
    id: str
    account_id: str
    name: str
    description: str
    rules: tuple[EscalationRule, ...]  # level 1 first


@dataclass(frozen=True)
class Shift:
    user_id: str
    start: float
    end: float


@dataclass(frozen=True)
class ScheduleLayer:
    """A rotation: `user_ids` take turns of `turn_length_seconds`, counted from
    `rotation_virtual_start`, from `start` on (no end, no restrictions)."""

    id: str
    name: str
    start: float
    rotation_virtual_start: float
    turn_length_seconds: int
    user_ids: tuple[str, ...]

    def shift_at(self, at: float) -> Shift | None:
        if at < self.start or not self.user_ids:
            return None
        turn = int((at - self.rotation_virtual_start) // self.turn_length_seconds)
        return self._shift(turn)

    def shifts(self, since: float, until: float) -> list[Shift]:
        """The shifts overlapping [since, until]; the one at `since` when they are equal."""
        first = self.shift_at(max(since, self.start))
        if first is None:
            return []
        found = [first]
        while found[-1].end < until:
            turn = int((found[-1].end - self.rotation_virtual_start) // self.turn_length_seconds)
            found.append(self._shift(turn))
        return found

    def _shift(self, turn: int) -> Shift:
        begin = self.rotation_virtual_start + turn * self.turn_length_seconds
        user = self.user_ids[turn % len(self.user_ids)]
        return Shift(user, max(begin, self.start), begin + self.turn_length_seconds)


@dataclass(frozen=True)
class Schedule:
    id: str
    account_id: str
    name: str
    description: str
    time_zone: str
    layers: tuple[ScheduleLayer, ...]

    def shift_at(self, at: float) -> Shift | None:
        """Who is on call at `at`: as in PagerDuty, a later layer covers the ones before it."""
        for layer in reversed(self.layers):
            shift = layer.shift_at(at)
            if shift is not None:
                return shift
        return None

    def shifts(self, since: float, until: float) -> list[Shift]:
        """The final schedule's shifts overlapping [since, until]. The seeded schedules have one
        layer each; with several, the last layer that has anyone on call speaks for the
        whole of each of its shifts (the sandbox does not split shifts between layers)."""
        for layer in reversed(self.layers):
            shifts = layer.shifts(since, until)
            if shifts:
                return shifts
        return []

    @property
    def user_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for layer in self.layers:
            seen.update(dict.fromkeys(layer.user_ids))
        return tuple(seen)


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
    # Set after 3 consecutive dropped deliveries, as PagerDuty does for 24 hours
    # (`delivery_method.temporarily_disabled`; `POST .../enable` ends it).
    disabled_until: float | None = None
    # The owner's switch (`active` in PUT /webhook_subscriptions/{id}): off, nothing is sent.
    enabled: bool = True

    def temporarily_disabled_at(self, now: float) -> bool:
        return self.disabled_until is not None and now < self.disabled_until

    def active_at(self, now: float) -> bool:
        """Whether deliveries go out now: switched on and not disabled after failures."""
        return self.enabled and not self.temporarily_disabled_at(now)

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
