"""A PostgreSQL these tests may stop and start: a throwaway cluster of the module's own (the
session's shared test database must stay up for everyone else), migrated, on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress

import asyncpg
import pytest

from app.db.migrations import apply_migrations
from bench.chaos.postgres import Postgres, PostgresError, throwaway_postgres
from bench.stack import free_port

WAIT_SECONDS = 30.0  # for things that happen in the background; never a speed assertion


@pytest.fixture(scope="module")
def cluster() -> Iterator[Postgres]:
    with throwaway_postgres(free_port()) as postgres:
        asyncio.run(apply_migrations(postgres.url))
        yield postgres


@pytest.fixture
async def postgres(cluster: Postgres) -> AsyncIterator[Postgres]:
    """The cluster, running again after the test whatever the test did to it."""
    yield cluster
    if not cluster.running():
        with suppress(PostgresError):
            await asyncio.to_thread(cluster.start)


async def stop(postgres: Postgres) -> None:
    """Stop PostgreSQL the hard way: to its clients, a crash."""
    await asyncio.to_thread(postgres.stop, "immediate")


async def start(postgres: Postgres) -> None:
    await asyncio.to_thread(postgres.start)


async def eventually(check: object, what: str) -> None:
    """Wait for `check()` (an async callable) to become true."""
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not await check():
        assert loop.time() < deadline, f"{what}: not within {WAIT_SECONDS:g} s"
        await asyncio.sleep(0.05)


async def scalar(postgres: Postgres, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(postgres.url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()
