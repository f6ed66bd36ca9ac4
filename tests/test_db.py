"""Migrations: applied in order, each once, each in its own transaction; readiness."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx2
import pytest
import sqlalchemy
from databases import Database

from app.db.deadlines import Deadlines, deadlines
from app.db.errors import DatabaseTimeout, database_unreachable
from app.db.migrations import (
    MigrationError,
    apply_migrations,
    discover_migrations,
    pending_migrations,
)
from app.db.pool import PooledDatabase, asyncpg_dsn, close_database, open_database
from app.deps import Deps
from app.main import create_app
from tests.conftest import _with_database


@pytest.fixture
async def empty_database(postgres_server_url: str) -> AsyncIterator[str]:
    name = f"pdconnect_mig_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(asyncpg_dsn(postgres_server_url))
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_server_url, name)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql)


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_migrations_apply_once_in_order(empty_database: str, tmp_path: Path) -> None:
    write(
        tmp_path, "0001_first.sql", "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);"
    )
    write(tmp_path, "0002_second.sql", "CREATE TABLE b (id int REFERENCES a (id) DEFERRABLE);")
    applied = await apply_migrations(empty_database, tmp_path)
    assert [m.version for m in applied] == [1, 2]
    assert await apply_migrations(empty_database, tmp_path) == []
    assert {"a", "b", "schema_migrations"} <= await tables(empty_database)


async def test_a_failing_migration_leaves_nothing_behind(
    empty_database: str, tmp_path: Path
) -> None:
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "0002_broken.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await apply_migrations(empty_database, tmp_path)
    found = await tables(empty_database)
    assert "ok" in found
    assert "half" not in found
    write(tmp_path, "0002_broken.sql", "CREATE TABLE half (id int);")
    assert [m.version for m in await apply_migrations(empty_database, tmp_path)] == [2]


def test_a_missing_migrations_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="no migrations folder"):
        discover_migrations(tmp_path / "absent")


def test_gaps_and_bad_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "")
    write(tmp_path, "0003_c.sql", "")
    with pytest.raises(MigrationError, match=r"0003_c\.sql"):
        discover_migrations(tmp_path)
    (tmp_path / "0003_c.sql").unlink()
    write(tmp_path, "2_bad.sql", "")
    with pytest.raises(MigrationError, match=r"2_bad\.sql"):
        discover_migrations(tmp_path)


async def test_project_migrations_apply_on_an_empty_database(empty_database: str) -> None:
    await apply_migrations(empty_database)
    db = Database(empty_database)
    await db.connect()
    try:
        assert await pending_migrations(db) == []
    finally:
        await db.disconnect()
    assert {"tenants", "ingest_keys", "installations", "pd_services", "audit_log"} <= await tables(
        empty_database
    )


async def test_readyz_reports_pending_migrations(empty_database: str, deps: Deps) -> None:
    db = Database(empty_database)
    await db.connect()
    try:
        app = create_app(Deps(config=deps.config, db=db, http=deps.http, clock=deps.clock))
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://t"
        ) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            pending = await http.get("/readyz")
            assert pending.status_code == 503
            assert "migrations pending" in pending.json()["reason"]
            await apply_migrations(empty_database)
            assert (await http.get("/readyz")).status_code == 200
            await db.disconnect()
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.json()["reason"] == "database unreachable"
    finally:
        if db.is_connected:
            await db.disconnect()


class RefusesTls:
    """A server on loopback that, like a PostgreSQL without TLS, answers an SSLRequest with
    'N', and records whether the client then went on without TLS."""

    def __init__(self) -> None:
        self.went_on_in_plaintext: list[bool] = []
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(8)  # SSLRequest
            writer.write(b"N")
            await writer.drain()
            startup = await reader.read(4)
            self.went_on_in_plaintext.append(bool(startup))
        except ConnectionError:
            self.went_on_in_plaintext.append(False)
        finally:
            writer.close()
            self.done.set()


@pytest.mark.parametrize(("query", "plaintext"), [("?sslmode=require", False), ("", True)])
async def test_sslmode_in_the_url_reaches_the_pool(query: str, plaintext: bool) -> None:
    fake = RefusesTls()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    db = open_database(f"postgresql://u:p@127.0.0.1:{port}/d{query}", min_size=1, max_size=1)
    try:
        with pytest.raises((ConnectionError, OSError, asyncpg.PostgresError)):
            await db.connect()
        await asyncio.wait_for(fake.done.wait(), timeout=10)
    finally:
        server.close()
        await server.wait_closed()
    # sslmode=require: refused TLS, the pool gave up rather than send a password in plaintext.
    assert fake.went_on_in_plaintext[0] is plaintext


async def test_only_the_drivers_connection_errors_mean_the_database_is_away() -> None:
    port = socket_nobody_listens_on()
    with pytest.raises(ConnectionRefusedError) as refused:
        await asyncpg.connect(f"postgresql://u@127.0.0.1:{port}/d", timeout=5)
    assert database_unreachable(refused.value)
    assert database_unreachable(asyncpg.InterfaceError("connection is closed"))
    assert database_unreachable(
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    )
    assert database_unreachable(asyncpg.InternalClientError("cannot switch to state 15"))
    assert database_unreachable(asyncpg.ConnectionDoesNotExistError("connection was closed"))
    assert database_unreachable(asyncpg.exceptions.CrashShutdownError("crash of another"))
    assert database_unreachable(asyncpg.exceptions.QueryCanceledError("statement timeout"))
    assert database_unreachable(asyncpg.exceptions.ReadOnlySQLTransactionError("standby"))
    assert database_unreachable(DatabaseTimeout("no answer within 3 s"))
    # Misuse of the driver is a bug, and an OSError of anything else is not the database's.
    assert not database_unreachable(asyncpg.exceptions.DataError("invalid input for query"))
    assert not database_unreachable(asyncpg.exceptions._base.DataError("wrong argument"))
    assert not database_unreachable(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    with pytest.raises(FileNotFoundError) as elsewhere:
        open_file_that_is_not_there()
    assert not database_unreachable(elsewhere.value)


def open_file_that_is_not_there() -> None:
    with open("/nonexistent/pdconnect"):
        pass


def socket_nobody_listens_on() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def pool_of_one(database_url: str) -> AsyncIterator[Database]:
    """The product's pool, one connection: one left checked out would stall everything."""
    db = open_database(database_url, min_size=1, max_size=1)
    await db.connect()
    try:
        yield db
    finally:
        await close_database(db, within=5)


async def test_deadlines_bound_the_work_inside_them_and_only_that(pool_of_one: Database) -> None:
    with deadlines(Deadlines(statement=0.2)):
        with pytest.raises(DatabaseTimeout):
            await pool_of_one.fetch_val("SELECT pg_sleep(30)")
        # The connection left in doubt was dropped, and its slot connects again.
        assert await pool_of_one.fetch_val("SELECT 1") == 1
    # Outside (the dispatcher, migrations, the command line) a statement takes its time.
    assert await pool_of_one.fetch_val("SELECT pg_sleep(0.5)::text") == ""


async def test_waiting_for_a_connection_is_bounded(pool_of_one: Database) -> None:
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with pool_of_one.transaction():
            await pool_of_one.execute("SELECT 1")
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    try:
        with deadlines(Deadlines(acquire=0.2)), pytest.raises(DatabaseTimeout):
            await pool_of_one.fetch_val("SELECT 1")
    finally:
        done.set()
        await holder
    assert await pool_of_one.fetch_val("SELECT 1") == 1


async def commit_a_duplicate(db: Database) -> None:
    async with db.transaction():
        await db.execute(
            "CREATE TEMP TABLE once (id int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"
        )
        # Only COMMIT finds the duplicate.
        await db.execute("INSERT INTO once VALUES (1), (1)")


async def test_a_transaction_whose_commit_fails_gives_its_connection_back(
    pool_of_one: Database,
) -> None:
    with pytest.raises(asyncpg.UniqueViolationError):
        await commit_a_duplicate(pool_of_one)

    async def elsewhere() -> object:
        return await pool_of_one.fetch_val("SELECT 1")

    # Plain `databases` kept that connection checked out: another task would wait forever
    # (bounded here, so that a regression fails instead of stalling the run).
    assert await asyncio.wait_for(asyncio.create_task(elsewhere()), 10) == 1
    assert await pool_of_one.fetch_val("SELECT 1") == 1


# The lean transaction (app/db/pool.py): the group commit's, one task's hand-written statements
# straight to a connection of its own.


async def lean_table(db: PooledDatabase) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS lean_rows (n int PRIMARY KEY)")
    await db.execute("DELETE FROM lean_rows")


async def lean(db: PooledDatabase, *statements: str, then: Exception | None = None) -> None:
    """The statements in one lean transaction, then `then` raised inside it."""
    async with db.lean_transaction():
        for statement in statements:
            await db.fetch_all(statement)
        if then is not None:
            raise then


async def rows(db: PooledDatabase) -> object:
    return await asyncio.wait_for(db.fetch_val("SELECT count(*) FROM lean_rows"), 10)


@pytest.fixture
async def pooled(pool_of_one: Database) -> PooledDatabase:
    assert isinstance(pool_of_one, PooledDatabase)
    await lean_table(pool_of_one)
    return pool_of_one


async def test_a_lean_transaction_commits_its_statements_together(pooled: PooledDatabase) -> None:
    async with pooled.lean_transaction():
        await pooled.execute("INSERT INTO lean_rows VALUES (:n)", {"n": 1})
        await pooled.execute("INSERT INTO lean_rows VALUES (:n)", {"n": 2})
        # Its own writes are seen inside, on the one connection it holds (a pool of one).
        assert await pooled.fetch_val("SELECT count(*) FROM lean_rows") == 2
        row = await pooled.fetch_one("SELECT max(n) AS top FROM lean_rows")
        assert row is not None
        assert row._mapping["top"] == 2
    assert await rows(pooled) == 2


async def test_a_failed_lean_transaction_leaves_nothing_and_its_connection_usable(
    pooled: PooledDatabase,
) -> None:
    duplicate = ("INSERT INTO lean_rows VALUES (1)", "INSERT INTO lean_rows VALUES (1)")
    with pytest.raises(asyncpg.UniqueViolationError):
        await lean(pooled, *duplicate)
    with pytest.raises(ValueError, match="refused"):
        await lean(pooled, "INSERT INTO lean_rows VALUES (2)", then=ValueError("refused"))
    # Nothing stayed, and the one connection came back each time (a pool of one would wait
    # forever otherwise).
    assert await rows(pooled) == 0


async def test_a_lean_transaction_past_its_deadline_is_dropped_and_commits_nothing(
    pooled: PooledDatabase,
) -> None:
    # Its own number: the server goes on with the abandoned session until its sleep ends.
    slow = ("INSERT INTO lean_rows VALUES (99)", "SELECT pg_sleep(30)")
    with deadlines(Deadlines(statement=0.2)), pytest.raises(DatabaseTimeout):
        await lean(pooled, *slow)
    assert await rows(pooled) == 0


async def nested(db: PooledDatabase) -> None:
    async with db.lean_transaction():
        await db.execute("INSERT INTO lean_rows VALUES (1)")
        async with db.transaction():
            await db.execute("INSERT INTO lean_rows VALUES (2)")


async def built(db: PooledDatabase) -> None:
    async with db.lean_transaction():
        await db.fetch_all(sqlalchemy.text("SELECT 1"))


async def test_a_lean_transaction_refuses_what_would_run_outside_it(
    pooled: PooledDatabase,
) -> None:
    for work in (nested, built):
        with pytest.raises(RuntimeError, match="outside it"):
            await work(pooled)
    assert await rows(pooled) == 0

    # Another task is not the transaction's: its statements take a connection of their own
    # (here the pool's only one is held, so it waits until the transaction has ended).
    async with pooled.lean_transaction():
        await pooled.execute("INSERT INTO lean_rows VALUES (3)")
        waiting = asyncio.create_task(rows(pooled))
        await asyncio.sleep(0.1)
        assert not waiting.done()
    assert await waiting == 1
