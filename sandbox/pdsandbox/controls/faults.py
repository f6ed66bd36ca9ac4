"""Faults injected into Events API answers, set at run time through `/_sandbox/faults` for
every routing key, or through `/_sandbox/faults/keys/{routing_key}` for one.

Settings (all optional; a POST changes only the ones it names):

| key | meaning |
|---|---|
| `latency_ms` | added to every Events API request before it is answered |
| `error_rate`, `error_status` | probability (0..1) of answering `error_status` (default 500) |
| `burst_429` | `{"every": N, "length": M}`: after every N requests the next M get 429 |
| `timeout_rate` | probability of holding the request `timeout_seconds`, then answering 500 |
| `timeout_seconds` | default 30: longer than a client's own timeout should be |
| `hang` | every request held unanswered until the hang is lifted (at most 600 s), then 500 |
| `trickle` | `{"seconds": S, "every_ms": M}`: the answer's body one byte every M ms, S seconds |
| `outage` | every request gets 503 |
| `reject` | `{"errors": [...]}`: every event gets 400 "invalid event" with these errors |
| `seed` | makes the random choices reproducible |

`reject` stands for PagerDuty refusing an event in a way the product did not foresee. `error_status`
is 500 to 599, or 429: PagerDuty's throttled answer (403 on v1), as `burst_429` gives.
`hang` stands for a host that took the connection and never answers: a hang is lifted by
setting it `false` or by a DELETE, and the requests it held are then answered 500. `trickle`
stands for an answer slower than any sensible deadline for a whole request though every byte
comes within a read timeout: the event is processed as usual (PagerDuty did take it), then the
answer's status and headers go out at once and its body one byte every M ms (`every_ms`,
default 500), padded with trailing spaces (JSON allows them) to last S seconds.
A request meets them in this order: latency, hang, outage, reject, burst, timeout, error. A
faulted request is not processed (PagerDuty did not take the event), but the arrival log
records it with the answer it got; `trickle` applies to an answer no fault replaced. The
decision is drawn when the request arrives, so a seeded run gives the same answers in arrival
order however the requests overlap in time.

Per routing key: a request's key is its v2 `routing_key` or its v1 `service_key`. A key with
settings of its own meets those instead of the global ones (a key's settings start from the
defaults, not from the global settings); every other key meets the global ones.
`GET /_sandbox/faults/keys` lists the keys with settings of their own, `GET|POST
/_sandbox/faults/keys/{routing_key}` reads or changes one (GET is 404 for a key without), and
`DELETE /_sandbox/faults/keys/{routing_key}` drops it (its hung requests are let go).
`DELETE /_sandbox/faults` drops every fault, global and per key.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from starlette.responses import Response, StreamingResponse

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_TRICKLE_EVERY_MS = 500.0
THROTTLED = 429
_MAX_SECONDS = 600.0
MAX_HANG_SECONDS = _MAX_SECONDS
MAX_KEYS = 10_000  # routing keys with settings of their own
MAX_KEY_LENGTH = 64

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Burst:
    every: int
    length: int


@dataclass(frozen=True)
class Trickle:
    seconds: float
    every_ms: float = DEFAULT_TRICKLE_EVERY_MS


@dataclass(frozen=True)
class FaultSettings:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    burst_429: Burst | None = None
    timeout_rate: float = 0.0
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    hang: bool = False
    trickle: Trickle | None = None
    outage: bool = False
    reject: tuple[str, ...] | None = None
    seed: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fault:
    kind: str  # "hang", "outage", "reject", "burst_429", "timeout" or "error"
    status: int
    errors: tuple[str, ...] = ()
    hold_seconds: float = 0.0  # how long to keep the client waiting first
    lifted: asyncio.Event | None = None  # ends the wait early when set (a hang lifted)

    async def hold(self, sleep: Sleep) -> None:
        """Keep the client waiting as this fault says: `hold_seconds`, or less if lifted."""
        if self.hold_seconds <= 0:
            return
        if self.lifted is None:
            await sleep(self.hold_seconds)
            return
        if self.lifted.is_set():
            return
        waits = {
            asyncio.ensure_future(sleep(self.hold_seconds)),
            asyncio.ensure_future(self.lifted.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()


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


def _trickle(value: object) -> Trickle | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not {"seconds"} <= set(value) <= {"seconds", "every_ms"}:
        raise FaultError('trickle must be null or {"seconds": S, "every_ms": M}')
    named = {f"trickle.{key}": number for key, number in value.items()}
    seconds = _number(named, "trickle.seconds", 0.001, _MAX_SECONDS)
    every_ms = DEFAULT_TRICKLE_EVERY_MS
    if "every_ms" in value:
        every_ms = _number(named, "trickle.every_ms", 1, _MAX_SECONDS * 1000)
    return Trickle(seconds, every_ms)


def _error_status(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value == THROTTLED:
        return THROTTLED
    try:
        return _integer(value, "error_status", 500, 599)
    except FaultError:
        raise FaultError("error_status must be an integer from 500 to 599, or 429") from None


def _flag(body: dict[str, Any], key: str) -> bool:
    if not isinstance(body[key], bool):
        raise FaultError(f"{key} must be true or false")
    return bool(body[key])


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
            changes[key] = _error_status(body[key])
        elif key == "burst_429":
            changes[key] = _burst(body[key])
        elif key in ("outage", "hang"):
            changes[key] = _flag(body, key)
        elif key == "trickle":
            changes[key] = _trickle(body[key])
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
    _lifted: asyncio.Event = field(default_factory=asyncio.Event)  # for the requests hung now

    def configure(self, body: dict[str, Any]) -> FaultSettings:
        new = parse_changes(self.settings, body)
        if "seed" in body:
            self.rng = random.Random(new.seed)
        if "burst_429" in body:
            self._burst_count = 0
        if self.settings.hang and not new.hang:
            self.lift()
        self.settings = new
        return new

    def clear(self) -> None:
        self.lift()
        self.settings = FaultSettings()
        self.rng = random.Random()
        self._burst_count = 0

    def lift(self) -> None:
        """Let every request hung so far go (they are answered 500)."""
        self._lifted.set()
        self._lifted = asyncio.Event()

    @property
    def latency_seconds(self) -> float:
        return self.settings.latency_ms / 1000

    @property
    def trickle(self) -> Trickle | None:
        return self.settings.trickle

    def decide(self) -> Fault | None:
        """The fault for the request arriving now, if any. Call once per request."""
        s = self.settings
        if s.hang:
            return Fault("hang", 500, hold_seconds=MAX_HANG_SECONDS, lifted=self._lifted)
        if s.outage:
            return Fault("outage", 503)
        if s.reject is not None:
            return Fault("reject", 400, errors=s.reject)
        if s.burst_429 is not None:
            position = self._burst_count % (s.burst_429.every + s.burst_429.length)
            self._burst_count += 1
            if position >= s.burst_429.every:
                return Fault("burst_429", THROTTLED)
        # A probability of 0 draws nothing, so turning one fault on does not shift the other's
        # sequence for a given seed.
        if s.timeout_rate > 0 and self.rng.random() < s.timeout_rate:
            return Fault("timeout", 500, hold_seconds=s.timeout_seconds)
        if s.error_rate > 0 and self.rng.random() < s.error_rate:
            return Fault("error", s.error_status)
        return None


def check_routing_key(routing_key: str) -> None:
    if not routing_key or len(routing_key) > MAX_KEY_LENGTH:
        raise FaultError(f"a routing key is 1 to {MAX_KEY_LENGTH} characters")


@dataclass
class FaultBook:
    """The global faults, and those of the routing keys that have their own."""

    everyone: FaultInjector = field(default_factory=FaultInjector)
    keys: dict[str, FaultInjector] = field(default_factory=dict)

    @property
    def settings(self) -> FaultSettings:
        return self.everyone.settings

    def configure(self, body: dict[str, Any]) -> FaultSettings:
        return self.everyone.configure(body)

    def for_key(self, routing_key: str | None) -> FaultInjector:
        """Whose faults a request with this routing key (None: none could be read) meets."""
        if routing_key is None:
            return self.everyone
        return self.keys.get(routing_key, self.everyone)

    def key_settings(self, routing_key: str) -> FaultSettings | None:
        injector = self.keys.get(routing_key)
        return None if injector is None else injector.settings

    def configure_key(self, routing_key: str, body: dict[str, Any]) -> FaultSettings:
        """Change one key's settings (starting from the defaults if it had none)."""
        check_routing_key(routing_key)
        injector = self.keys.get(routing_key)
        if injector is None:
            if len(self.keys) >= MAX_KEYS:
                raise FaultError(f"at most {MAX_KEYS} routing keys have faults of their own")
            parse_changes(FaultSettings(), body)  # a bad body creates nothing
            injector = self.keys[routing_key] = FaultInjector()
        return injector.configure(body)

    def drop_key(self, routing_key: str) -> bool:
        injector = self.keys.pop(routing_key, None)
        if injector is None:
            return False
        injector.lift()
        return True

    def clear(self) -> None:
        self.everyone.clear()
        for injector in self.keys.values():
            injector.lift()
        self.keys.clear()


def trickled(response: Response, trickle: Trickle, sleep: Sleep) -> Response:
    """`response` with its status and headers at once and its body one byte at a time, one
    every `trickle.every_ms`, padded with spaces (JSON allows them) to last `trickle.seconds`."""
    every = trickle.every_ms / 1000
    body = bytes(response.body)
    body += b" " * max(math.ceil(trickle.seconds / every) - len(body), 0)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(len(body)):
            await sleep(every)
            yield body[i : i + 1]

    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    headers["content-length"] = str(len(body))
    return StreamingResponse(chunks(), status_code=response.status_code, headers=headers)
