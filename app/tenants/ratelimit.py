"""The rate limit of each ingest key, counted in events written (after a request's alerts are
fanned out to their services), kept in PostgreSQL so that it binds every web process of a
deployment as one.

A request pays one event when its key is checked, before its body is read, so that even
requests that write nothing are limited; once routed, it pays for the rest of its events
(`EventBudget.spend`) before anything is written, and is refused whole when they do not fit.

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
from uuid import UUID

from databases import Database

from app.config.model import Config
from app.errors import InputError
from app.tenants import ratelimit_store

# The burst a key may send after a quiet spell, in seconds of its sustained rate: an
# Alertmanager or a vendor's product flushing a backlog sends many requests at once, then few.
BURST_SECONDS = 10


@dataclass(frozen=True)
class IngestRateLimit:
    per_second: float
    burst: int

    @classmethod
    def from_config(cls, config: Config) -> IngestRateLimit | None:
        """None when PDCONNECT_INGEST_RATE_LIMIT is 0 (no limit)."""
        rate = config.ingest_rate_limit
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
    """Too many events with one ingest key: retry after `retry_after` seconds."""

    def __init__(self, limit: IngestRateLimit, retry_after: int, *, events: int = 1) -> None:
        what = "requests" if events == 1 else f"events: this request would write {events}, and"
        unit = "event" if limit.per_second == 1 else "events"
        super().__init__(
            f"too many {what} with this ingest key: at most {limit.per_second:g} {unit} a "
            f"second, in bursts of up to {limit.burst} (PDCONNECT_INGEST_RATE_LIMIT); "
            f"retry in {retry_after} s"
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class EventBudget:
    """What one authenticated ingest request may write: at most `max_events` events
    (PDCONNECT_MAX_EVENTS_PER_REQUEST), and what its key's rate limit has left."""

    db: Database
    key_id: UUID
    limit: IngestRateLimit | None
    max_events: int
    now: datetime

    @classmethod
    def from_config(
        cls, db: Database, key_id: UUID, config: Config, now: datetime
    ) -> EventBudget:
        return cls(
            db=db,
            key_id=key_id,
            limit=IngestRateLimit.from_config(config),
            max_events=config.max_events_per_request,
            now=now,
        )

    async def spend(self, events: int) -> None:
        """Pay for `events` (the key check paid one already). Raises InputError (413) for a
        request no budget could ever take, IngestRateLimited (429) for one to retry later."""
        if events > self.max_events:
            raise InputError(
                "",
                f"this request would write {events} events (alerts times the services they "
                f"go to), more than the {self.max_events} one request may write "
                "(PDCONNECT_MAX_EVENTS_PER_REQUEST)",
                status=413,
            )
        limit = self.limit
        if limit is None or events <= 1:
            return
        if events > limit.burst:
            raise InputError(
                "",
                f"this request would write {events} events, more than this ingest key may "
                f"ever write at once: {limit.burst} (PDCONNECT_INGEST_RATE_LIMIT, "
                f"{limit.per_second:g} a second, in bursts of ten seconds' worth)",
                status=413,
            )
        extra = events - 1
        spent = await ratelimit_store.spend_more(
            self.db,
            self.key_id,
            now=self.now,
            cost=limit.interval * extra,
            # Allowed when the last of the extra events fits, as a single one would.
            fits=limit.tolerance - limit.interval * (extra - 1),
        )
        if not spent.allowed:
            # The retry pays for its key check again, then for the same extra events.
            due = spent.tat + limit.interval * extra
            raise IngestRateLimited(limit, limit.retry_after(due, self.now), events=events)
