"""Faults injected into Events API answers, set at run time through `/_sandbox/faults`.

Settings (all optional; a POST changes only the ones it names):

| key | meaning |
|---|---|
| `latency_ms` | added to every Events API request before it is answered |
| `error_rate`, `error_status` | probability (0..1) of answering `error_status` (5xx, default 500) |
| `burst_429` | `{"every": N, "length": M}`: after every N requests the next M get 429 |
| `timeout_rate` | probability of holding the request `timeout_seconds`, then answering 500 |
| `timeout_seconds` | default 30: longer than a client's own timeout should be |
| `outage` | every request gets 503 |
| `reject` | `{"errors": [...]}`: every event gets 400 "invalid event" with these errors |
| `seed` | makes the random choices reproducible |

`reject` stands for PagerDuty refusing an event in a way the product did not foresee.
A request meets them in this order: latency, outage, reject, burst, timeout, error. A faulted
request is not processed (PagerDuty did not take the event), but the arrival log records it with the
answer it got. The decision is drawn when the request arrives, so a seeded run gives the same
answers in arrival order however the requests overlap in time.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

DEFAULT_TIMEOUT_SECONDS = 30.0
_MAX_SECONDS = 600.0


@dataclass(frozen=True)
class Burst:
    every: int
    length: int


@dataclass(frozen=True)
class FaultSettings:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    burst_429: Burst | None = None
    timeout_rate: float = 0.0
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    outage: bool = False
    reject: tuple[str, ...] | None = None
    seed: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fault:
    kind: str  # "outage", "reject", "burst_429", "timeout" or "error"
    status: int
    errors: tuple[str, ...] = ()
    hold_seconds: float = 0.0  # how long to keep the client waiting first


class FaultError(ValueError):
    """A fault setting is wrong; the message says which."""


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float:
    value = body[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise FaultError(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def _integer(value: object, key: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise FaultError(f"{key} must be an integer from {low} to {high}")
    return value


def _burst(value: object) -> Burst | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"every", "length"}:
        raise FaultError('burst_429 must be null or {"every": N, "length": M}')
    return Burst(
        _integer(value["every"], "burst_429.every", 1, 1_000_000),
        _integer(value["length"], "burst_429.length", 1, 1_000_000),
    )


def _seed(value: object) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise FaultError("seed must be an integer or null")
    return value


def _reject(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    errors = value.get("errors") if isinstance(value, dict) else None
    if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
        raise FaultError('reject must be {"errors": ["…", …]} or null')
    return tuple(errors)


def parse_changes(current: FaultSettings, body: dict[str, Any]) -> FaultSettings:
    """`current` with the changes in `body` applied, or FaultError naming the first bad one.
    Nothing is applied unless everything is valid."""
    changes: dict[str, Any] = {}
    for key in body:
        if key == "latency_ms":
            changes[key] = _number(body, key, 0, _MAX_SECONDS * 1000)
        elif key in ("error_rate", "timeout_rate"):
            changes[key] = _number(body, key, 0, 1)
        elif key == "timeout_seconds":
            changes[key] = _number(body, key, 0.001, _MAX_SECONDS)
        elif key == "error_status":
            changes[key] = _integer(body[key], key, 500, 599)
        elif key == "burst_429":
            changes[key] = _burst(body[key])
        elif key == "outage":
            if not isinstance(body[key], bool):
                raise FaultError("outage must be true or false")
            changes[key] = body[key]
        elif key == "reject":
            changes[key] = _reject(body[key])
        elif key == "seed":
            changes[key] = _seed(body[key])
        else:
            raise FaultError(f"Unknown fault {key!r}")
    return replace(current, **changes)


@dataclass
class FaultInjector:
    settings: FaultSettings = field(default_factory=FaultSettings)
    rng: random.Random = field(default_factory=random.Random)
    _burst_count: int = 0  # requests seen since burst_429 was set

    def configure(self, body: dict[str, Any]) -> FaultSettings:
        new = parse_changes(self.settings, body)
        if "seed" in body:
            self.rng = random.Random(new.seed)
        if "burst_429" in body:
            self._burst_count = 0
        self.settings = new
        return new

    def clear(self) -> None:
        self.settings = FaultSettings()
        self.rng = random.Random()
        self._burst_count = 0

    @property
    def latency_seconds(self) -> float:
        return self.settings.latency_ms / 1000

    def decide(self) -> Fault | None:
        """The fault for the request arriving now, if any. Call once per request."""
        s = self.settings
        if s.outage:
            return Fault("outage", 503)
        if s.reject is not None:
            return Fault("reject", 400, errors=s.reject)
        if s.burst_429 is not None:
            position = self._burst_count % (s.burst_429.every + s.burst_429.length)
            self._burst_count += 1
            if position >= s.burst_429.every:
                return Fault("burst_429", 429)
        # A probability of 0 draws nothing, so turning one fault on does not shift the other's
        # sequence for a given seed.
        if s.timeout_rate > 0 and self.rng.random() < s.timeout_rate:
            return Fault("timeout", 500, hold_seconds=s.timeout_seconds)
        if s.error_rate > 0 and self.rng.random() < s.error_rate:
            return Fault("error", s.error_status)
        return None
