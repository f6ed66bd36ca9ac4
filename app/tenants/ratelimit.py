"""The rate limit of each ingest key, counted in events written (after a request's alerts are
fanned out to their services), shared through PostgreSQL so that it binds every web process
of a deployment as one.

A request pays one event when its key is checked, before its body is read, so that even
requests that write nothing are limited; once routed, it pays for the rest of its events
(`EventBudget.spend`) before anything is written, and is refused whole when they do not fit.

It is GCRA (the generic cell rate algorithm): a token bucket written as one timestamp per key,
its "theoretical arrival time" (tat). Every accepted request moves tat one interval
(1 / per_second) forward from the later of tat and now; a request is refused while tat lies more
than the tolerance (burst - 1 intervals) ahead of now. So a key makes `per_second` requests a
second for as long as it likes, and after a quiet spell a burst of `burst` at once.

Where the tat is kept:
- Without the process's cache (`Deps.cache` None: the tests' default, one-off commands), in
  PostgreSQL only: the check rides in the statement that authenticates the key
  (app/tenants/ratelimit_store.py), and `EventBudget.spend` is one more statement.
- With it (`pdconnect serve`), in memory (`LocalBudgets`): the key check and `EventBudget.spend`
  (which runs inside the group commit's transaction) touch no database. Every SYNC_SECONDS
  while it has keys in use, a process adds what it spent since its last sync to each key's
  shared tat in PostgreSQL, all keys in one statement, and takes the result (everyone's spending)
  as its own tat, plus what it spent while the statement ran.

Tolerance with N processes: a process sees the others' spending only at its next sync, so each
may admit what its own view allows before it sees theirs: at most one burst (its local tat
cannot run more than the tolerance ahead of now). So N processes together admit at most
(N - 1) x burst events beyond what one process would, at any moment; never more, since what
they admitted lands in the shared tat within a sync or two and then refuses everyone until
time has paid it back: over a long flood the rate is kept, the excess being at most
(N - 1) bursts once. With one process the in-memory limit is exact. A process that stops
before its sync forgets at most SYNC_SECONDS of its spending (as a crash of PostgreSQL
empties the UNLOGGED table).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from databases import Database

from app.config.model import Config
from app.db.errors import database_unreachable
from app.db.pool import in_own_task
from app.deps import Clock, Deps
from app.errors import InputError
from app.tenants import ratelimit_store
from app.tenants.ratelimit_store import Spent

log = logging.getLogger("pdconnect.tenants")

# The burst a key may send after a quiet spell, in seconds of its sustained rate: an
# Alertmanager or a vendor's product flushing a backlog sends many requests at once, then few.
BURST_SECONDS = 10
# How often a process adds its spending to the shared budgets while it has keys in use: the
# other processes see it this late, at most (see the tolerance above).
SYNC_SECONDS = 0.1
# After a sync that failed (the database away), the next try waits this long; nothing spent
# is lost meanwhile, it waits in memory.
SYNC_RETRY_SECONDS = 1.0
# A sync is one short statement; a slower one is abandoned and its spending tried again.
SYNC_TIMEOUT_SECONDS = 5.0
# The name of the process's budgets in its cache (ChangeCache.keep).
BUDGETS = "ingest budgets"


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


@dataclass
class _Held:
    """One key's budget as this process sees it."""

    # The key's tat: the shared one at the last sync, moved by what was spent here since.
    tat: datetime
    # Spent here and not yet added to the shared tat.
    unsynced: timedelta = timedelta(0)
    # Used since the last sync (its last use is stamped at the next).
    used: bool = False
    # Whether the key has a limit (PDCONNECT_INGEST_RATE_LIMIT not 0).
    limited: bool = True


class LocalBudgets:
    """The ingest keys' budgets of one process, in memory, synced with PostgreSQL's (see the
    module docstring). One per process: `local_budgets(deps)`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._held: dict[UUID, _Held] = {}
        self._syncing: asyncio.Task[None] | None = None

    def take(self, key_id: UUID, *, now: datetime, cost: timedelta, fits: timedelta) -> Spent:
        """Move the key's tat `cost` forward when it lies within `fits` of now (as
        ratelimit_store.spend_more does in PostgreSQL); else spend nothing and say where it
        stands."""
        held = self._held.setdefault(key_id, _Held(tat=now))
        held.used = True
        self._keep_syncing()
        start = max(held.tat, now)
        if start > now + fits:
            return Spent(allowed=False, tat=held.tat)
        held.tat = start + cost
        held.unsynced += cost
        return Spent(allowed=True, tat=held.tat)

    def note_use(self, key_id: UUID) -> None:
        """A key without a limit was used: only its last use is recorded at the next sync."""
        held = self._held.setdefault(key_id, _Held(tat=self.clock(), limited=False))
        held.used = True
        self._keep_syncing()

    def _keep_syncing(self) -> None:
        if self._syncing is None or self._syncing.done():
            # A context of its own: the loop outlives the request that started it, and must
            # carry neither its deadlines nor its request id.
            self._syncing = asyncio.get_running_loop().create_task(
                self._sync_while_held(), context=contextvars.Context()
            )

    async def close(self) -> None:
        """Stop syncing (what was spent since the last sync is not written)."""
        if self._syncing is not None:
            self._syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncing

    async def _sync_while_held(self) -> None:
        while self._held:
            await asyncio.sleep(SYNC_SECONDS)
            if not await self.sync():
                await asyncio.sleep(SYNC_RETRY_SECONDS)

    async def sync(self) -> bool:
        """Add what this process spent to the shared budgets and take theirs; False when the
        database could not be reached (the spending waits for the next sync)."""
        now = self.clock()
        batch = [
            (key_id, held.unsynced, held.limited)
            for key_id, held in self._held.items()
            if held.used or held.unsynced or held.tat > now
        ]
        for key_id, held in list(self._held.items()):
            if not (held.used or held.unsynced or held.tat > now):
                # Idle with its whole burst back: nothing to keep, the next use starts afresh.
                del self._held[key_id]
        if not batch:
            return True
        for key_id, _, _ in batch:
            held = self._held[key_id]
            held.unsynced = timedelta(0)
            held.used = False
        try:
            shared = await asyncio.wait_for(
                in_own_task(ratelimit_store.sync_budgets(self.db, batch, now=now)),
                SYNC_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            # Not written (or not known to be): spent again at the next sync. A statement that
            # did commit and timed out only counts the spending twice, erring on the safe side.
            for key_id, cost, _ in batch:
                held = self._held.setdefault(key_id, _Held(tat=now))
                held.unsynced += cost
                held.used = True
            if not (database_unreachable(exc) or isinstance(exc, TimeoutError)):
                log.exception("could not sync the ingest keys' budgets")
            return False
        for key_id, tat in shared.items():
            synced = self._held.get(key_id)
            if synced is not None:
                # Everyone's spending, plus what this process spent while the statement ran.
                synced.tat = tat + synced.unsynced
        return True


def local_budgets(deps: Deps) -> LocalBudgets | None:
    """The process's budgets in memory when it keeps a cache, else None (PostgreSQL's)."""
    if deps.cache is None:
        return None
    return deps.cache.keep(BUDGETS, LocalBudgets, lambda: LocalBudgets(deps.db, deps.clock))


@dataclass(frozen=True)
class EventBudget:
    """What one authenticated ingest request may write: at most `max_events` events
    (PDCONNECT_MAX_EVENTS_PER_REQUEST), and what its key's rate limit has left."""

    db: Database
    key_id: UUID
    limit: IngestRateLimit | None
    max_events: int
    now: datetime
    # The process's budgets in memory, else the key's budget is spent in PostgreSQL.
    local: LocalBudgets | None = None

    @classmethod
    def of_request(cls, deps: Deps, key_id: UUID) -> EventBudget:
        """The budget of a request authenticated with `key_id`, where this process keeps it."""
        return cls(
            db=deps.db,
            key_id=key_id,
            limit=IngestRateLimit.from_config(deps.config),
            max_events=deps.config.max_events_per_request,
            now=deps.clock(),
            local=local_budgets(deps),
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
        cost = limit.interval * extra
        # Allowed when the last of the extra events fits, as a single one would.
        fits = limit.tolerance - limit.interval * (extra - 1)
        if self.local is not None:
            spent = self.local.take(self.key_id, now=self.now, cost=cost, fits=fits)
        else:
            spent = await ratelimit_store.spend_more(
                self.db, self.key_id, now=self.now, cost=cost, fits=fits
            )
        if not spent.allowed:
            # The retry pays for its key check again, then for the same extra events.
            due = spent.tat + limit.interval * extra
            raise IngestRateLimited(limit, limit.retry_after(due, self.now), events=events)
