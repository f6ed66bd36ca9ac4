"""PostgreSQL: the connection, the embedded server, and the migrations runner.

Migrations are numbered plain SQL files in `migrations/` (`0001_tenants.sql`, …), applied in
order, each once, each in its own transaction, on a raw asyncpg connection because `databases`
runs one statement per call. A session-level advisory lock makes concurrent start-ups (several
web and worker processes at once) take turns instead of racing.

A database that is away or broken is one answer for callers: retry later (HTTP 503 with
Retry-After). `database_unreachable(exc)` says which errors mean that:

    DatabaseTimeout                  one of our deadlines passed (see Deadlines): waiting for a
                                     connection, or a statement (a COMMIT too: its outcome is
                                     unknown)
    OSError raised in the driver     refused, reset, unreachable, asyncpg's own timeouts
    asyncpg.PostgresConnectionError  class 08: the session is gone (ConnectionDoesNotExistError)
    asyncpg.OperatorInterventionError  class 57: shutdown, crash, restart, cancelled statement
    asyncpg.InsufficientResourcesError class 53: too many connections, disk full, out of memory
    asyncpg.PostgresSystemError      class 58: the server's I/O failed
    asyncpg.ReadOnlySQLTransactionError, IdleInTransactionSessionTimeoutError: a failover left
                                     a read-only standby, or the server ended an idle session
    asyncpg.InternalClientError      the connection's protocol state is broken (a reply the
                                     driver did not expect, a stale schema cache, a standby)
    asyncpg.InterfaceError itself    the connection is closed, or still busy with a statement
                                     cut off by a deadline ("another operation is in progress")

Everything else (a constraint violated, a query or argument that is wrong: InterfaceError's
subclasses) is a bug or bad input, never disguised as an outage.

Deadlines are client-side: a frozen server (SIGSTOP, a hung disk, a network black hole) answers
nothing, so a server-side `statement_timeout` would never fire. They are scoped: web requests
run under the ones from settings (`RequestDeadlines`), while the dispatcher, upkeep, the command
line and migrations, whose statements may legitimately take longer, keep none of ours.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import Awaitable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
from databases import Database
from databases.backends.postgres import PostgresBackend, PostgresConnection, PostgresTransaction
from databases.core import Transaction
from databases.interfaces import Record, TransactionBackend
from sqlalchemy.sql import ClauseElement
from starlette.types import ASGIApp, Receive, Scope, Send

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
log = logging.getLogger("pdconnect.db")
# Any constant will do; it only has to be the same in every pdconnect process.
MIGRATION_LOCK_ID = 7_143_260_118
EMBEDDED_DATABASE = "pdconnect"
# How long closing a pool may wait for its connections to be returned (see close_database).
CLOSE_SECONDS = 10.0


class DatabaseTimeout(Exception):
    """Retry later: the database did not answer within one of our deadlines. When the
    statement was a COMMIT (or ran outside a transaction), whether it took effect is unknown."""


# What asyncpg and `databases` raise while PostgreSQL is away or broken, found by stopping,
# killing and freezing it under load (see the module docstring for each). The caller should
# retry later; nothing was committed unless it said so.
DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    DatabaseTimeout,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.PostgresSystemError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.InternalClientError,
    asyncpg.InterfaceError,
)


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be used now, not that the statement or its
    arguments are wrong (InterfaceError's subclasses say the latter)."""
    if isinstance(exc, asyncpg.InterfaceError):
        return type(exc) is asyncpg.InterfaceError
    if isinstance(exc, OSError):
        # An OSError is the database's only when the driver raised it: a file or socket of
        # something else failing is not a reason to tell callers the database is away.
        return _raised_in_driver(exc)
    return isinstance(exc, DATABASE_UNREACHABLE)


def _raised_in_driver(exc: BaseException) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if module.split(".")[0] in ("asyncpg", "databases"):
            return True
        frame = frame.tb_next
    return False


T = TypeVar("T")


async def in_own_task(work: Coroutine[Any, Any, T]) -> T:
    """Run database work in a task of its own, for loops that live as long as the process.

    `databases` ties a connection to the task that uses it. When the database drops that
    connection under a statement or a transaction, the tie can be left broken for the rest of
    the task: every later statement fails ("Connection is already acquired", "connection has
    been released back to the pool") long after the database is back. A new task starts with
    no tie, so a loop that does each round's work this way recovers with the database."""
    return await asyncio.create_task(work)


@dataclass(frozen=True)
class Deadlines:
    """How long the database work of one task may wait, in seconds; None: as long as it takes.

    `acquire`: for a connection (from the pool, or a new one). `statement`: for each statement,
    BEGIN, COMMIT and ROLLBACK included."""

    acquire: float | None = None
    statement: float | None = None


NO_DEADLINES = Deadlines()
# Frozen, so one shared default is safe.
_deadlines: ContextVar[Deadlines] = ContextVar("pdconnect_db_deadlines", default=NO_DEADLINES)


@contextmanager
def deadlines(limits: Deadlines) -> Iterator[None]:
    """Run the database work inside (and in tasks started inside) under `limits`."""
    token = _deadlines.set(limits)
    try:
        yield
    finally:
        _deadlines.reset(token)


class RequestDeadlines:
    """ASGI middleware: each HTTP request's database work runs under `limits`, so that a frozen
    database costs a request seconds, not as long as the freeze. Lifespan work (the dispatcher
    started there) is left alone."""

    def __init__(self, app: ASGIApp, limits: Deadlines) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with deadlines(self.limits):
            await self.app(scope, receive, send)


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
        limit = _deadlines.get().acquire
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
            await self._pool().release(connection, timeout=_deadlines.get().statement)
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
        limit = _deadlines.get().statement
        try:
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
    with "Connection is already acquired"."""

    async def start(self) -> _Transaction:
        connection = self._connection
        self._transaction = connection._connection.transaction()
        async with connection._transaction_lock:
            is_root = not connection._transaction_stack
            await connection.__aenter__()
            try:
                await self._transaction.start(is_root=is_root, extra_options=self._extra_options)
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
                await (backend.commit() if commit else backend.rollback())
            finally:
                self._transaction = None
                await connection.__aexit__()


class _Backend(PostgresBackend):
    def connection(self) -> _Connection:
        return _Connection(self, self._dialect)


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


class MigrationError(Exception):
    """The migrations folder is inconsistent (a gap, a duplicate, a bad name)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    # The folder sits beside app/ in the checkout; an install without it must not look
    # migrated.
    if not folder.is_dir():
        raise MigrationError(f"no migrations folder at {folder}: install from a checkout")
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: expected NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"{migration.path.name}: expected version {expected:04d}")
    return found


def open_database(
    url: str, *, min_size: int | None = None, max_size: int | None = None
) -> Database:
    """A `databases` pool for DATABASE_URL, honouring its `sslmode` and `Deadlines`.

    `databases` hands asyncpg only the host, port, user, password and database of the URL, so
    `?sslmode=require` (what managed PostgreSQL services tell you to add) would be dropped and
    the pool would talk in plaintext; asyncpg itself takes the mode as `ssl`."""
    options: dict[str, Any] = {}
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


async def _ensure_schema_table(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


async def apply_migrations(url: str, folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration; return the ones applied now."""
    migrations = discover_migrations(folder)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await _ensure_schema_table(conn)
            done = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
            applied: list[Migration] = []
            for migration in migrations:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                applied.append(migration)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()


async def pending_migrations(db: Database, folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    exists = await db.fetch_val("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done: set[int] = set()
    if exists:
        rows = await db.fetch_all("SELECT version FROM schema_migrations")
        done = {int(row._mapping["version"]) for row in rows}
    return [m for m in discover_migrations(folder) if m.version not in done]


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL under `data_dir`; return its database URL.

    pgserver keeps the cluster in `data_dir/postgres` across restarts and listens on a unix
    socket inside it; the server stops when the last process that asked for it exits.
    """
    # Imported here: only the embedded mode needs it. Its import warns when XDG_RUNTIME_DIR is
    # unset (it then uses /tmp), which is normal on servers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "postgres", cleanup_mode="stop")
    # EMBEDDED_DATABASE is a constant; psql takes no parameters.
    query = f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';"  # noqa: S608
    exists = server.psql(query)
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return str(server.get_uri(EMBEDDED_DATABASE))
