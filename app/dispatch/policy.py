"""How long to wait, and when to stop: the dispatcher's retry policy, as plain arithmetic.

Per PagerDuty's own table (pagerduty.md §6): 5xx, timeouts and refused connections are retried
with capped exponential backoff and full jitter, for hours; a 429 pauses the routing key alone
("a few minutes"); a 400 is never retried. The budget keeps us under PagerDuty's per-key limit
before it has to say 429: a sliding window a little longer than PagerDuty's 60 seconds, so
that our clock, PagerDuty's clock and the time a request spends on the wire cannot add up to
one event too many in PagerDuty's window.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from app.config.model import DEFAULT_MAX_HELD_BYTES


@dataclass(frozen=True)
class DispatchConfig:
    concurrency: int = 16
    batch_size: int = 32
    # Events per tenant looked at per claim: enough to fill a batch, few enough that one
    # tenant's backlog never crowds others out of the scan.
    per_tenant_scan: int = 64
    retry_base: timedelta = timedelta(seconds=2)
    retry_cap: timedelta = timedelta(minutes=10)
    give_up_after: timedelta = timedelta(hours=24)
    rate_limited_base: timedelta = timedelta(seconds=30)
    rate_limited_cap: timedelta = timedelta(minutes=5)
    budget_window: timedelta = timedelta(seconds=62)
    # A claimed event whose worker vanished is claimed again after this.
    lease: timedelta = timedelta(seconds=30)
    # Without a notification, look for due retries at least this often.
    poll_interval: timedelta = timedelta(seconds=2)
    # This many key rejections in a row mark the service unhealthy.
    key_rejections_to_unhealthy: int = 3
    # Sends in flight to one routing key, across every worker (counted in the database): a key
    # that hangs holds at most this many sends, so it cannot take the others' turns.
    max_in_flight_per_key: int = 4
    # Sends one worker has in flight to one PagerDuty host (a region): below `concurrency`, so
    # a region that hangs leaves room for the other.
    max_in_flight_per_host: int = 12
    # A whole send (connect, write, the whole answer) ends by this deadline, and always
    # `lease_margin` before the lease does, so no send outlives its lease.
    send_timeout: timedelta = timedelta(seconds=10)
    # After this many sends to a key without an answer in time (since its last delivery), the
    # key rests as after a 429: its events wait, with the reason shown on them.
    timeouts_to_pause: int = 2
    # Bytes of bodies one worker holds (claimed and not yet finished), whatever its other caps
    # allow: a claim takes events while their bodies fit the room left, and its first one
    # whatever its size (else a body larger than the room would never be sent), so a worker
    # holds at most this plus one event. Without it a tenant writing events of the largest
    # size could have claims bring in hundreds of them, and the worker, every tenant's,
    # killed for its memory.
    max_held_bytes: int = DEFAULT_MAX_HELD_BYTES

    @property
    def lease_margin(self) -> timedelta:
        """How long before its lease runs out a send is cut off at the latest: time to close
        the connection and record the outcome while the lease is still this sender's."""
        return self.lease / 6


def dispatch_config(
    *,
    concurrency: int,
    retry_base_seconds: float,
    retry_cap_seconds: float,
    give_up_after_hours: float,
    rate_limited_pause_seconds: float,
    max_in_flight_per_key: int = 4,
    max_in_flight_per_host: int | None = None,
    max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
) -> DispatchConfig:
    """`max_in_flight_per_host` defaults to three quarters of `concurrency`."""
    return DispatchConfig(
        concurrency=concurrency,
        max_in_flight_per_key=max_in_flight_per_key,
        max_held_bytes=max_held_bytes,
        max_in_flight_per_host=max_in_flight_per_host or max(1, concurrency * 3 // 4),
        batch_size=max(concurrency * 4, 8),
        retry_base=timedelta(seconds=retry_base_seconds),
        retry_cap=timedelta(seconds=retry_cap_seconds),
        give_up_after=timedelta(hours=give_up_after_hours),
        rate_limited_base=timedelta(seconds=rate_limited_pause_seconds),
        rate_limited_cap=max(timedelta(minutes=5), timedelta(seconds=rate_limited_pause_seconds)),
    )


def _jittered(base: timedelta, cap: timedelta, level: int, rng: random.Random) -> timedelta:
    ceiling = min(cap.total_seconds(), base.total_seconds() * (2 ** min(level, 32)))
    # Full jitter (spread over the whole interval) keeps many workers from retrying in step;
    # never below half the base, so a retry is never immediate.
    return timedelta(seconds=max(base.total_seconds() / 2, rng.uniform(0, ceiling)))


def retry_delay(config: DispatchConfig, attempts: int, rng: random.Random) -> timedelta:
    """Wait after the `attempts`-th failed attempt (1 for the first)."""
    return _jittered(config.retry_base, config.retry_cap, max(attempts - 1, 0), rng)


def rate_limited_pause(
    config: DispatchConfig, level: int, retry_after: float | None, rng: random.Random
) -> timedelta:
    """How long a routing key rests after its `level`-th 429 in a row (0 for the first)."""
    pause = _jittered(config.rate_limited_base, config.rate_limited_cap, level, rng)
    if retry_after is not None and retry_after > 0:
        pause = max(
            pause, timedelta(seconds=min(retry_after, config.rate_limited_cap.total_seconds()))
        )
    return pause
