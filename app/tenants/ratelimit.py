"""The request rate limit of each ingest key, kept in PostgreSQL so that it binds every web
process of a deployment as one.

It is GCRA (the generic cell rate algorithm): a token bucket written as one timestamp per key,
its "theoretical arrival time" (tat). Every accepted request moves tat one interval
(1 / per_second) forward from the later of tat and now; a request is refused while tat lies more
than the tolerance (burst - 1 intervals) ahead of now. So a key makes `per_second` requests a
second for as long as it likes, and after a quiet spell a burst of `burst` at once. The check
rides in the statement that authenticates the key (app/tenants/ratelimit_store.py): it costs no
extra round trip, and a refused request never reaches the outbox.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.settings import Settings

# The burst a key may send after a quiet spell, in seconds of its sustained rate: an
# Alertmanager or a vendor's product flushing a backlog sends many requests at once, then few.
BURST_SECONDS = 10


@dataclass(frozen=True)
class IngestRateLimit:
    per_second: float
    burst: int

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestRateLimit | None:
        """None when PDCONNECT_INGEST_RATE_LIMIT is 0 (no limit)."""
        rate = settings.ingest_rate_limit
        if rate == 0:
            return None
        return cls(per_second=rate, burst=max(1, math.ceil(rate * BURST_SECONDS)))

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=1 / self.per_second)

    @property
    def tolerance(self) -> timedelta:
        return self.interval * (self.burst - 1)

    def retry_after(self, tat: datetime, now: datetime) -> int:
        """Whole seconds until a refused request would be accepted (Retry-After)."""
        wait = (tat - self.tolerance - now).total_seconds()
        return max(1, math.ceil(wait))


class IngestRateLimited(Exception):
    """Too many requests with one ingest key: retry after `retry_after` seconds."""

    def __init__(self, limit: IngestRateLimit, retry_after: int) -> None:
        super().__init__(
            f"too many requests with this ingest key: at most {limit.per_second:g} a second, "
            f"in bursts of up to {limit.burst}; retry in {retry_after} s"
        )
        self.retry_after = retry_after
