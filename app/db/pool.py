"""The `databases` pool our code uses: PostgreSQL connections that honour `Deadlines`, are
dropped when their session is in doubt and come back to the pool after a failed transaction."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
from databases import Database
from databases.backends.common.records import Record as DatabasesRecord
from databases.backends.common.records import create_column_maps
from databases.backends.postgres import PostgresBackend, PostgresConnection, PostgresTransaction
from databases.core import Connection as DatabasesConnection
from databases.core import Transaction
from databases.interfaces import Record, TransactionBackend
from sqlalchemy.sql import ClauseElement

from app.db.deadlines import current_deadlines
from app.db.errors import DatabaseTimeout, database_unreachable

log = logging.getLogger("pdconnect.db")
# How long closing a pool may wait for its connections to be returned (see close_database).
CLOSE_SECONDS = 10.0

T = TypeVar("T")


async def in_own_task(work: Coroutine[Any, Any, T]) -> T:
    """Run database work in a task of its own, for loops that live as long as the process.

    `databases` ties a connection to the task that uses it. When the database drops that
    connection under a statement or a transaction, the tie can be left broken for the rest of
    the task: every later statement fails ("Connection is already acquired", "connection has
    been released back to the pool") long after the database is back. A new task starts with
    no tie, so a loop that does each round's work this way recovers with the database."""
    return await asyncio.create_task(work)


# How SQLAlchemy's text() finds a bound parameter: `:name`, not part of a `::type` cast, not
# after a word character or a backslash.
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
# The column maps of a row read by hand-written SQL: none (the row is read by name or index).
_NO_COLUMNS = create_column_maps([])


@functools.lru_cache(maxsize=1024)
def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """Hand-written SQL with `:name` parameters, as asyncpg takes it (`$1`, `$2`, …) and the
    names in their order. Cached: our statements are constants, and turning one into a
    SQLAlchemy `text()` and compiling it again on every call cost more than running it (a
    fifth of a lone ingest request's time, by profile)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _BIND.sub(number, sql).replace("\\:", ":"), tuple(names)


def _arguments(sql: str, values: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    statement, names = _positional(sql)
    given = values or {}
    missing = [name for name in names if name not in given]
    if missing:
        raise ValueError(f"no value for the statement's parameter(s): {', '.join(missing)}")
    return statement, [given[name] for name in names]


class _Connection(PostgresConnection):
    """A pool connection that keeps the deadlines of the task using it, and is dropped rather
    than reused once it may be in an unknown state.

    After a deadline, asyncpg would wait for the server to acknowledge the cancelled statement
    before the connection could be used (or released) again: with a frozen server, for as long
    as the freeze. Terminating the connection instead answers at once; PostgreSQL rolls back
    whatever the session left open when it notices the session is gone."""

    _broken = False

    def _pool(self) -> asyncpg.Pool:
        pool = self._database._pool
        assert pool is not None, "DatabaseBackend is not running"
        return pool

    async def acquire(self) -> None:
        assert self._connection is None, "Connection is already acquired"
        limit = current_deadlines().acquire
        try:
            self._connection = await self._pool().acquire(timeout=limit)
        except TimeoutError as exc:
            # Without a limit of ours, the driver's own (connecting) ran out: left as it is.
            if limit is None:
                raise
            raise DatabaseTimeout(f"no database connection within {limit:g} s") from exc
        self._broken = False

    async def release(self) -> None:
        assert self._connection is not None, "Connection is not acquired"
        connection, self._connection = self._connection, None
        if self._broken:
            _drop(connection)
        # A dropped connection is already back in the pool (as a slot to reconnect), and
        # asyncpg then does nothing here. Otherwise the reset is bounded like a statement.
        try:
            await self._pool().release(connection, timeout=current_deadlines().statement)
        except Exception as exc:
            # The work is done (or has failed) whatever happens here, and a connection whose
            # reset failed is terminated by asyncpg: turning a commit that returned into a 503
            # would only have the sender repeat its event.
            if not database_unreachable(exc):
                raise
            log.info("a database connection was dropped on release: %s", type(exc).__name__)

    def drop(self) -> None:
        """Terminate the connection now: its session may be in any state."""
        self._broken = True
        if self._connection is not None:
            _drop(self._connection)

    async def bounded(self, work: Awaitable[T]) -> T:
        """`work` under the statement deadline; a connection left in doubt is not reused."""
        limit = current_deadlines().statement
        try:
            if limit is None:
                # Work with no deadline of ours (the dispatcher, upkeep, commands): no timeout
                # context to make and enter for every statement.
                return await work
            async with asyncio.timeout(limit):
                return await work
        except TimeoutError as exc:
            self._broken = True
            if limit is None:
                raise
            raise DatabaseTimeout(f"no answer from the database within {limit:g} s") from exc
        except asyncio.CancelledError:
            self._broken = True
            raise
        except Exception as exc:
            if database_unreachable(exc):
                self._broken = True
            raise

    async def fetch_all(self, query: ClauseElement) -> list[Record]:
        return await self.bounded(super().fetch_all(query))

    async def fetch_one(self, query: ClauseElement) -> Record | None:
        return await self.bounded(super().fetch_one(query))

    # fetch_val goes through fetch_one.

    async def execute(self, query: ClauseElement) -> Any:
        return await self.bounded(super().execute(query))

    async def execute_many(self, queries: list[ClauseElement]) -> None:
        await self.bounded(super().execute_many(queries))

    def transaction(self) -> TransactionBackend:
        return _BackendTransaction(connection=self)

    # Hand-written SQL straight to asyncpg (see PooledDatabase): what `databases` would do with
    # it, without building and compiling a SQLAlchemy statement each time.

    async def fetch_all_sql(self, sql: str, values: Mapping[str, Any] | None) -> list[Record]:
        statement, args = _arguments(sql, values)
        rows = await self.bounded(self._raw().fetch(statement, *args))
        return [DatabasesRecord(row, (), self._dialect, _NO_COLUMNS) for row in rows]

    async def fetch_one_sql(self, sql: str, values: Mapping[str, Any] | None) -> Record | None:
        statement, args = _arguments(sql, values)
        row = await self.bounded(self._raw().fetchrow(statement, *args))
        return None if row is None else DatabasesRecord(row, (), self._dialect, _NO_COLUMNS)

    async def execute_sql(self, sql: str, values: Mapping[str, Any] | None) -> Any:
        statement, args = _arguments(sql, values)
        return await self.bounded(self._raw().fetchval(statement, *args))

    def _raw(self) -> asyncpg.Connection:
        assert self._connection is not None, "Connection is not acquired"
        return self._connection


def _drop(connection: Any) -> None:
    # Once terminated, the pool's proxy refuses every call, terminate() included.
    with suppress(asyncpg.InterfaceError):
        connection.terminate()


class _BackendTransaction(PostgresTransaction):
    """BEGIN, COMMIT and ROLLBACK under the statement deadline, on a connection that is
    dropped when one of them fails: its session is in doubt."""

    _connection: _Connection

    async def start(self, is_root: bool, extra_options: dict[Any, Any]) -> None:
        await self._connection.bounded(super().start(is_root, extra_options))

    async def commit(self) -> None:
        try:
            await self._connection.bounded(super().commit())
        except BaseException:
            self._connection.drop()
            raise

    async def rollback(self) -> None:
        if self._connection._broken:
            # Nothing to wait for: the server rolls back a session that ends.
            self._connection.drop()
            return
        try:
            await self._connection.bounded(super().rollback())
        except BaseException:
            self._connection.drop()
            raise


class _Transaction(Transaction):
    """`databases`' transaction, giving its connection back whatever BEGIN, COMMIT or
    ROLLBACK did.

    `databases` releases the connection only after one that succeeded. After a failure the
    connection stayed checked out of the pool for good (a pool drained that way answers 503
    long after the database is back) and tied to the task, whose next statement then failed
    with "Connection is already acquired".

    BEGIN, COMMIT and ROLLBACK (or their savepoints) also take the connection's query lock, as
    every statement does: where tasks share one connection (a `force_rollback` database, which
    the tests use), `databases` would otherwise send them while another task's statement is
    running, and asyncpg refuses that ("another operation is in progress")."""

    async def start(self) -> _Transaction:
        connection = self._connection
        self._transaction = connection._connection.transaction()
        async with connection._transaction_lock:
            is_root = not connection._transaction_stack
            await connection.__aenter__()
            try:
                async with connection._query_lock:
                    await self._transaction.start(
                        is_root=is_root, extra_options=self._extra_options
                    )
            except BaseException:
                self._transaction = None
                await connection.__aexit__()
                raise
            connection._transaction_stack.append(self)
        return self

    async def commit(self) -> None:
        await self._end(commit=True)

    async def rollback(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        connection = self._connection
        async with connection._transaction_lock:
            assert connection._transaction_stack[-1] is self
            connection._transaction_stack.pop()
            backend = self._transaction
            assert backend is not None
            try:
                async with connection._query_lock:
                    await (backend.commit() if commit else backend.rollback())
            finally:
                self._transaction = None
                await connection.__aexit__()


class _Backend(PostgresBackend):
    def connection(self) -> _Connection:
        return _Connection(self, self._dialect)


# The connection a lean transaction holds (PooledDatabase.lean_transaction): its pool, itself,
# and the one task whose statements go to it. Tasks started meanwhile inherit the variable,
# not the connection: a connection runs one statement at a time.
_PINNED: ContextVar[tuple[PooledDatabase, _Connection, asyncio.Task[Any] | None] | None] = (
    ContextVar("pdconnect_pinned_connection", default=None)
)
NOT_IN_LEAN = (
    "inside a lean transaction only hand-written statements (SQL text) run: anything else "
    "would run on another connection, outside it"
)


class PooledDatabase(Database):
    """`databases.Database` whose PostgreSQL connections honour `Deadlines` and come back to
    the pool after a failed transaction."""

    SUPPORTED_BACKENDS = {  # noqa: RUF012 - as `databases` declares it
        **Database.SUPPORTED_BACKENDS,
        "postgresql": f"{__name__}:_Backend",
        "postgres": f"{__name__}:_Backend",
    }

    def transaction(self, *, force_rollback: bool = False, **kwargs: Any) -> Transaction:
        return _Transaction(self.connection, force_rollback=force_rollback, **kwargs)

    def connection(self) -> DatabasesConnection:
        # Every other way to the database goes through here (a statement built with
        # SQLAlchemy, `transaction()`): inside a lean transaction it would leave it.
        if self._pinned() is not None:
            raise RuntimeError(NOT_IN_LEAN)
        return super().connection()

    @asynccontextmanager
    async def lean_transaction(self) -> AsyncIterator[None]:
        """A transaction on a connection of its own, for one task's hand-written statements
        (`fetch_all` and the others, given SQL text), which go straight to that connection.

        What `transaction()` gives them, without `databases`' bookkeeping around BEGIN, each
        statement and COMMIT (its connection per task, locks, the transaction stack): about
        half of a lone ingest batch's CPU in the process, and a round trip's worth of its
        latency. The same deadlines hold: each statement, BEGIN and COMMIT under the
        statement deadline, the connection under the acquire deadline, and a connection left
        in doubt (a deadline, a cancellation, a failed COMMIT or ROLLBACK) is terminated, not
        reused. Anything else asked of this database by the task meanwhile (a statement
        built with SQLAlchemy, `transaction()`, `connection()`) is refused: it would run
        outside the transaction. Where every task shares one connection (`force_rollback`,
        the tests' database), this is `transaction()`."""
        if self._force_rollback:
            async with self.transaction():
                yield
            return
        if self._pinned() is not None:
            raise RuntimeError(NOT_IN_LEAN)
        backend = self._backend.connection()
        assert isinstance(backend, _Connection)
        await backend.acquire()
        token = _PINNED.set((self, backend, asyncio.current_task()))
        try:
            await backend.bounded(backend._raw().execute("BEGIN"))
            try:
                yield
            except BaseException:
                await _abandon(backend)
                raise
            try:
                await backend.bounded(backend._raw().execute("COMMIT"))
            except BaseException:
                # Committed or not is unknown: the session must not be reused.
                backend.drop()
                raise
        finally:
            _PINNED.reset(token)
            await backend.release()

    def _pinned(self) -> _Connection | None:
        """The connection of the lean transaction the current task holds on this database."""
        pinned = _PINNED.get()
        if pinned is None:
            return None
        database, backend, task = pinned
        if database is not self or task is not asyncio.current_task():
            return None
        return backend

    # A statement given as a string (all of ours: hand-written SQL with `:name` parameters) goes
    # to asyncpg as it is, under the connection's query lock as `databases` would take it; one
    # built with SQLAlchemy takes `databases`' way. The values reach asyncpg as given (no
    # SQLAlchemy type processing): asyncpg encodes them by the statement's parameter types.

    async def fetch_all(
        self, query: ClauseElement | str, values: dict[str, Any] | None = None
    ) -> list[Record]:
        if not isinstance(query, str):
            return await super().fetch_all(query, values)
        pinned = self._pinned()
        if pinned is not None:
            return await pinned.fetch_all_sql(query, values)
        async with self.connection() as connection, connection._query_lock:
            return await _backend_of(connection).fetch_all_sql(query, values)

    async def fetch_one(
        self, query: ClauseElement | str, values: dict[str, Any] | None = None
    ) -> Record | None:
        if not isinstance(query, str):
            return await super().fetch_one(query, values)
        pinned = self._pinned()
        if pinned is not None:
            return await pinned.fetch_one_sql(query, values)
        async with self.connection() as connection, connection._query_lock:
            return await _backend_of(connection).fetch_one_sql(query, values)

    async def fetch_val(
        self, query: ClauseElement | str, values: dict[str, Any] | None = None, column: Any = 0
    ) -> Any:
        if not isinstance(query, str):
            return await super().fetch_val(query, values, column=column)
        row = await self.fetch_one(query, values)
        return None if row is None else row[column]

    async def execute(
        self, query: ClauseElement | str, values: dict[str, Any] | None = None
    ) -> Any:
        if not isinstance(query, str):
            return await super().execute(query, values)
        pinned = self._pinned()
        if pinned is not None:
            return await pinned.execute_sql(query, values)
        async with self.connection() as connection, connection._query_lock:
            return await _backend_of(connection).execute_sql(query, values)


async def _abandon(backend: _Connection) -> None:
    """End a lean transaction that failed: ROLLBACK, or terminate the session when it is in
    doubt or the ROLLBACK fails (PostgreSQL rolls back a session that ends). Raises only when
    cancelled meanwhile: otherwise the failure that got here is what the caller hears of."""
    if backend._broken:
        backend.drop()
        return
    try:
        await backend.bounded(backend._raw().execute("ROLLBACK"))
    except asyncio.CancelledError:
        backend.drop()
        raise
    except Exception:
        backend.drop()


def _backend_of(connection: DatabasesConnection) -> _Connection:
    backend = connection._connection
    assert isinstance(backend, _Connection)
    return backend


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset of a connection coming back: nothing beyond what asyncpg always does
    first (`Connection._reset`: roll back a transaction left open, drop its listeners).

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;` on every release: one more round trip per statement `databases` runs, which
    hands the connection back after each one (a sixth of ingest's time, by profile). Our pool
    connections keep no session state for it to undo: no SET (settings go in the connection's
    server_settings), no LISTEN (the dispatcher listens on a connection of its own,
    app/outbox/wakeups.py), no session advisory lock (the migrations' is taken on a raw
    connection, app/db/migrations.py), no cursor outliving its transaction. Should one ever
    need session state, it must use a connection of its own, as those do."""


def open_database(
    url: str, *, min_size: int | None = None, max_size: int | None = None
) -> Database:
    """A `databases` pool for DATABASE_URL, honouring its `sslmode` and `Deadlines`, that
    resets a returned connection only by rolling back what it left open (`_keep_session`).

    `databases` hands asyncpg only the host, port, user, password and database of the URL, so
    `?sslmode=require` (what managed PostgreSQL services tell you to add) would be dropped and
    the pool would talk in plaintext; asyncpg itself takes the mode as `ssl`."""
    options: dict[str, Any] = {"reset": _keep_session}
    if min_size is not None:
        options["min_size"] = min_size
    if max_size is not None:
        options["max_size"] = max_size
    sslmode = parse_qs(urlsplit(url).query).get("sslmode")
    if sslmode:
        options["ssl"] = sslmode[-1]
    return PooledDatabase(url, **options)


async def close_database(db: Database, *, within: float = CLOSE_SECONDS) -> None:
    """Close a pool, by force after `within` seconds.

    asyncpg closes a pool by waiting for every connection to come back. One that the database
    cut off mid-transaction can stay checked out of the pool for good (`databases` never
    releases it), and the wait would never end: the process would hang on SIGTERM. Cancelling
    the wait makes asyncpg terminate the pool, which is what asyncpg recommends."""
    try:
        await asyncio.wait_for(db.disconnect(), within)
    except TimeoutError:
        log.warning("the database pool did not close within %g s; its connections were cut", within)


def asyncpg_dsn(url: str) -> str:
    """`databases` accepts `postgresql+asyncpg://`; asyncpg wants the plain scheme."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))
