"""Shared fixtures: a real PostgreSQL for every test that touches data.

The server is `TEST_DATABASE_URL` when set, else an embedded PostgreSQL (pgserver) started once
per run in a temporary directory. Each run creates its own database and applies the migrations
with the real runner; each test gets a `Database` opened with `force_rollback=True`, so
everything it writes disappears when it ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx2
import pytest
from databases import Database

from app.config.load import load_config
from app.config.model import Config
from app.crypto import new_fernet_key
from app.db.migrations import apply_migrations
from app.db.pool import PooledDatabase, asyncpg_dsn, close_database, open_database
from app.deps import Deps, new_http_client

BASE_URL = "http://127.0.0.1:8000"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from pgserver.postgres_server import get_server

    # A short path: PostgreSQL's unix socket lives in the data directory and socket paths are
    # limited to about 100 bytes.
    folder = Path(tempfile.mkdtemp(prefix="pdc-pg-", dir="/tmp"))
    server = get_server(folder, cleanup_mode="delete")
    yield str(server.get_uri("postgres"))
    server.cleanup()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    name = f"pdconnect_test_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(postgres_server_url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(postgres_server_url, name)
    asyncio.run(apply_migrations(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    # The product's pool class, so that its transactions behave as they do when served.
    database = PooledDatabase(database_url, force_rollback=True)
    await database.connect()
    try:
        yield database
    finally:
        await database.disconnect()


@pytest.fixture
async def cdb(database_url: str) -> AsyncIterator[Database]:
    # The product's pool as `serve` opens it: its transactions give their connection back
    # whatever happens in them (a plain `databases` pool kept one that a cancelled task held,
    # and closing it then waited for that connection forever), and closing it is bounded.
    database = open_database(database_url, min_size=1, max_size=20)
    await database.connect()
    try:
        yield database
    finally:
        # Tenants (and everything of theirs), and the rows no tenant owns.
        await database.execute("TRUNCATE tenants, dispatch_keys, callback_defaults CASCADE")
        # A served app's background fold moves the analytics watermark to its now: left there,
        # a later test's history written in the past would never be folded.
        await database.execute("UPDATE analytics_watermark SET folded_to = '-infinity'")
        await close_database(database)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(**overrides: str) -> Config:
    env = {
        "DATABASE_URL": "postgresql://unused/unused",
        "BASE_URL": BASE_URL,
        "SECRET_KEY": "s" * 48,
        "ENCRYPTION_KEYS": new_fernet_key(),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "PAGERDUTY_CLIENT_ID": "test-client",
        "PAGERDUTY_CLIENT_SECRET": "test-client-secret-0123456789",
        "PAGERDUTY_APP_ID": "PTESTAP",
    }
    env.update(overrides)
    return load_config(environ=env, env_file=None)


@pytest.fixture
def settings() -> Config:
    return make_settings()


@pytest.fixture
async def deps(db: Database, settings: Config, clock: FakeClock) -> AsyncIterator[Deps]:
    http = new_http_client()
    try:
        yield Deps(config=settings, db=db, http=http, clock=clock)
    finally:
        await http.aclose()


@pytest.fixture
async def client(deps: Deps) -> AsyncIterator[httpx2.AsyncClient]:
    from app.main import create_app

    app = create_app(deps)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
