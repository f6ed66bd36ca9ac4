"""A server killed between a batch's INSERT and its COMMIT told none of that batch's senders
"accepted", and left none of its events behind: a 202 still means committed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import httpx2
import pytest

from app.db.pool import asyncpg_dsn
from tests.conftest import admin_headers
from tests.security.served import served_process

# Bounds on waits, far from what is expected; never a speed measure.
PATIENCE_SECONDS = 20.0
SENDERS = 12


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        yield connection
    finally:
        await connection.execute("TRUNCATE tenants, dispatch_keys CASCADE")
        await connection.close()


# Backends of the server that write events and wait for a lock: the ready key's row, the only
# lock the test holds. (The statement's text is not matched: it may be longer than what
# pg_stat_activity keeps of it.)
WAITING_WRITERS = """
SELECT a.pid FROM pg_stat_activity a
WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()
  AND EXISTS (
    SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.pid = a.pid AND c.relname = 'events' AND l.mode = 'RowExclusiveLock')
"""


async def _waiting_batch(admin: asyncpg.Connection) -> int:
    """The server's backend that has written a batch's events and waits for the ready key."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        pid = await admin.fetchval(WAITING_WRITERS + " LIMIT 1")
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError("no batch came to wait after writing its events")


async def test_a_server_killed_between_insert_and_commit_answered_no_one_202(
    database_url: str, admin: asyncpg.Connection
) -> None:
    with served_process(database_url) as (port, process):
        base = f"http://127.0.0.1:{port}"
        async with httpx2.AsyncClient(base_url=base, timeout=PATIENCE_SECONDS) as http:
            created = await http.post(
                "/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers()
            )
            tenant = created.json()
            added = await http.post(
                f"/admin/v1/tenants/{tenant['id']}/services",
                json={"name": "Checkout", "routing_key": "c" * 32, "api": "v2"},
                headers=admin_headers(),
            )
            assert added.status_code == 201, added.text
            headers = {"Authorization": f"Bearer {tenant['ingest_key']}"}
            first = await http.post("/v1/alerts", json={"summary": "first"}, headers=headers)
            assert first.status_code == 202, first.text
            tenant_id = UUID(tenant["id"])

            # Hold the key's ready row: the next batch writes its events, then waits here for
            # this transaction, before its COMMIT.
            holder = await asyncpg.connect(asyncpg_dsn(database_url))
            hold = holder.transaction()
            await hold.start()
            await holder.execute(
                "SELECT 1 FROM ready_keys WHERE tenant_id = $1 FOR UPDATE", tenant_id
            )
            senders = [
                asyncio.create_task(
                    http.post("/v1/alerts", json={"summary": f"alert {i}"}, headers=headers)
                )
                for i in range(SENDERS)
            ]
            try:
                await _waiting_batch(admin)
                os.kill(process.pid, signal.SIGKILL)
                answers = await asyncio.gather(*senders, return_exceptions=True)
            finally:
                await hold.rollback()
                await holder.close()

    assert not any(isinstance(a, httpx2.Response) and a.status_code == 202 for a in answers)
    assert all(isinstance(a, httpx2.TransportError) for a in answers), answers
    # PostgreSQL rolled back the killed server's transaction: only the first alert is there.
    deadline = time.monotonic() + PATIENCE_SECONDS
    while await admin.fetchval(f"SELECT count(*) FROM ({WAITING_WRITERS}) AS w"):  # noqa: S608
        assert time.monotonic() < deadline, "the killed server's session never ended"
        await asyncio.sleep(0.05)
    summaries = await admin.fetch(
        "SELECT body -> 'payload' ->> 'summary' AS summary FROM events WHERE tenant_id = $1",
        tenant_id,
    )
    assert [r["summary"] for r in summaries] == ["first"]
