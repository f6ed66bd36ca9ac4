"""What a process keeps in memory of the database, and the notices that tell it to forget.

Ingest reads a few things on every request that change rarely: a tenant's services, rules and
severity map, and its ingest keys. `ChangeCache` keeps them per process, in bounded LRU tables,
and forgets a tenant's entries as soon as PostgreSQL says that tenant's data changed: triggers
on the tables involved (migrations/0011_change_notices.sql) send
`pg_notify('pdconnect_changes', <tenant id>)` once per statement and tenant, so no writer,
present or future, can forget to. A notification is delivered at commit, to every listening
process: a rolled-back change tells nobody, and a committed one reaches every web process within
a round trip.

Never stale for long, even when notices are lost:
- The cache is used only while its LISTEN connection is up (`live`). Without one (not started
  yet, lost, or being reopened) every read goes to PostgreSQL, exactly as without a cache.
- On every (re)connect the whole cache is dropped first: notices sent while nobody listened
  are lost, so nothing read before can be trusted.
- A read that raced with a notice is not stored: each read notes the change counter before it
  asks PostgreSQL and stores its answer only if no notice (of any tenant) came meanwhile, since
  that answer may predate the change the notice announced.
- A connection that died silently (a server that vanished without closing it) is asked a
  question every few seconds and given up when it does not answer.

Entries are dropped per tenant, whatever table they are in; a payload that is not a tenant id
(`*`, sent by TRUNCATE) drops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

import asyncpg

from app.db.errors import DATABASE_UNREACHABLE
from app.db.pool import asyncpg_dsn

log = logging.getLogger("pdconnect.db")

# The channel the triggers of 0011_change_notices.sql notify; the payload is a tenant id.
CHANGES_CHANNEL = "pdconnect_changes"
# How the LISTEN connection shows in pg_stat_activity.
LISTENER_NAME = "pdconnect changes"
# After the LISTEN connection is lost, reconnect after this long, doubling up to the cap (as
# the dispatcher does); meanwhile every read goes to PostgreSQL.
LISTEN_RETRY_FIRST = 0.5
LISTEN_RETRY_CAP = 5.0
# Shorter than the dispatcher's check (30 s): a dead connection the process has not noticed
# is a cache serving what may have changed, so it is found out within seconds.
LISTEN_CHECK_SECONDS = 5.0
LISTEN_CHECK_TIMEOUT = 2.0
# Opening the connection: meanwhile every read goes to PostgreSQL (or fails there).
CONNECT_TIMEOUT = 10.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class TenantTable(Generic[K, V]):
    """An LRU table of at most `max_entries` values, each belonging to one tenant."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[UUID, V]] = OrderedDict()
        self._by_tenant: dict[UUID, set[K]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, tenant_id: UUID, value: V) -> None:
        self._drop(key)
        self._entries[key] = (tenant_id, value)
        self._by_tenant.setdefault(tenant_id, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def forget_tenant(self, tenant_id: UUID) -> None:
        for key in self._by_tenant.pop(tenant_id, ()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._by_tenant.clear()

    def _drop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        keys = self._by_tenant.get(entry[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_tenant[entry[0]]


class ChangeCache:
    """A process's tables of what it read from PostgreSQL, kept while notices can reach it.

    Domains ask for their tables by name (`table`) and read through `read`; `run` holds the
    LISTEN connection for as long as the process serves."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._tables: dict[str, TenantTable[Any, Any]] = {}
        self._kept: dict[str, object] = {}
        self._live = False
        # Moved by every notice and every reset: a read stores its answer only if this did not
        # move while it asked PostgreSQL.
        self._changes = 0
        # The reads asking PostgreSQL now, by table and key, each with the count of changes it
        # started at: concurrent misses of one key share one read (see `read`).
        self._loading: dict[tuple[int, Hashable], tuple[int, asyncio.Future[Any]]] = {}

    @property
    def live(self) -> bool:
        """True while notices reach this process, so that what the tables hold is current."""
        return self._live

    @property
    def notices(self) -> int:
        """How many times entries were dropped (notices and resets) since the process began."""
        return self._changes

    def table(self, name: str, max_entries: int) -> TenantTable[Any, Any]:
        """The table `name`, made on first ask with room for `max_entries` values."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = TenantTable(max_entries)
        return table

    def keep(self, name: str, kind: type[T], make: Callable[[], T]) -> T:
        """Other state a domain keeps per process beside its tables (made on first ask), so
        that it lives exactly as long as the process's cache does."""
        kept = self._kept.get(name)
        if kept is None:
            kept = self._kept[name] = make()
        assert isinstance(kept, kind)
        return kept

    async def read(
        self,
        table: TenantTable[K, V],
        key: K,
        load: Callable[[], Awaitable[V | None]],
        tenant_of: Callable[[V], UUID],
    ) -> V | None:
        """The value of `key`: from `table` when it holds it and notices are arriving, else
        from `load` (PostgreSQL), stored when that is safe. None (not found) is not stored:
        what is not there yet may be created any moment, and a miss costs no more than today."""
        if not self._live:
            return await load()
        found = table.get(key)
        if found is not None:
            return found
        # Requests that miss the same key at once (every request of a busy tenant, right after
        # a notice dropped its entry) wait for the one read already asking, rather than each
        # asking PostgreSQL and building the value again: dozens of identical reads would hold
        # the event loop for as long as all of them take. Only a read that began after the
        # latest notice is shared: one begun before it may answer with what the notice changed.
        slot = (id(table), key)
        loading = self._loading.get(slot)
        if loading is not None and loading[0] == self._changes:
            shared = loading[1]
            try:
                return cast("V | None", await asyncio.shield(shared))
            except asyncio.CancelledError:
                if not shared.cancelled():
                    raise  # this caller was cancelled
                return await load()  # the shared read was: this caller asks on its own
        before = self._changes
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[slot] = (before, future)
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            # Retrieved here, so that a failure no waiter saw is not reported as unhandled.
            future.exception()
            raise
        else:
            future.set_result(value)
        finally:
            if self._loading.get(slot, (0, None))[1] is future:
                del self._loading[slot]
        if value is not None and self._live and self._changes == before:
            table.put(key, tenant_of(value), value)
        return value

    def changed(self, tenant_id: UUID | None) -> None:
        """Forget what is held of `tenant_id` (None: of every tenant)."""
        self._changes += 1
        for table in self._tables.values():
            if tenant_id is None:
                table.clear()
            else:
                table.forget_tenant(tenant_id)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            tenant_id: UUID | None = UUID(payload)
        except ValueError:
            tenant_id = None
        self.changed(tenant_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the LISTEN connection until `stop`, opening a new one whenever the database
        drops or refuses it. Stops at once when told, even while connecting to a database
        that does not answer."""
        listening = asyncio.create_task(self._keep_listening())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({listening, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    async def _keep_listening(self) -> None:
        pause = LISTEN_RETRY_FIRST
        while True:
            try:
                await self._listen_until_lost()
            except DATABASE_UNREACHABLE as exc:
                log.warning(
                    "no LISTEN connection for changes (%s); reading through, reconnecting in %g s",
                    type(exc).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, LISTEN_RETRY_CAP)
            else:
                pause = LISTEN_RETRY_FIRST

    async def _listen_until_lost(self) -> None:
        conn = await asyncpg.connect(
            asyncpg_dsn(self.database_url),
            timeout=CONNECT_TIMEOUT,
            server_settings={"application_name": LISTENER_NAME},
        )
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANGES_CHANNEL, self._notified)
            # Whatever changed while nobody listened was not announced: start empty.
            self.changed(None)
            self._live = True
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), LISTEN_CHECK_SECONDS)
                if not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), LISTEN_CHECK_TIMEOUT)
            log.warning("the LISTEN connection for changes was closed; reconnecting")
        finally:
            self._live = False
            self.changed(None)
            conn.terminate()
