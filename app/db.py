"""PostgreSQL: the connection, the embedded server, and the migrations runner.

Migrations are numbered plain SQL files in `migrations/` (`0001_tenants.sql`, …), applied in
order, each once, each in its own transaction, on a raw asyncpg connection because `databases`
runs one statement per call. A session-level advisory lock makes concurrent start-ups (several
web and worker processes at once) take turns instead of racing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
from databases import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
log = logging.getLogger("pdconnect.db")
# Any constant will do; it only has to be the same in every pdconnect process.
MIGRATION_LOCK_ID = 7_143_260_118
EMBEDDED_DATABASE = "pdconnect"
# How long closing a pool may wait for its connections to be returned (see close_database).
CLOSE_SECONDS = 10.0
# What asyncpg and `databases` raise while PostgreSQL is away, found by stopping it under load:
# connecting is refused or times out (OSError), a session ends under a running statement
# (PostgresConnectionError; AdminShutdownError or CrashShutdownError on shutdown), a starting
# server turns connections away (CannotConnectNowError, TooManyConnectionsError while
# reconnecting pools crowd in), and a transaction cannot end on its dead connection (plain
# InterfaceError). The caller should retry later; nothing was committed unless it said so.
DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached now, not that the statement or
    its arguments are wrong (InterfaceError's subclasses say the latter)."""
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
    """A `databases` pool for DATABASE_URL, honouring its `sslmode`.

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
    return Database(url, **options)


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
