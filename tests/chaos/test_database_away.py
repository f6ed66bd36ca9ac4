"""While PostgreSQL is away the web app answers 503 with Retry-After (retry later: nothing was
committed), never 500 and never 202; once it is back the same requests are accepted, with no
restart: the connection pool replaces the connections the database dropped."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx2
import pytest
from databases import Database

from app.db.pool import close_database
from app.deps import Deps, new_http_client
from app.main import create_app
from bench.chaos.postgres import Postgres
from tests.chaos.conftest import eventually, scalar, start, stop
from tests.conftest import BASE_URL, admin_headers, make_settings


@pytest.fixture
async def http(postgres: Postgres) -> AsyncIterator[httpx2.AsyncClient]:
    db = Database(postgres.url, min_size=1, max_size=4)
    await db.connect()
    deps = Deps(config=make_settings(DATABASE_URL=postgres.url), db=db, http=new_http_client())
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client
    finally:
        await deps.http.aclose()
        await close_database(db)


async def ingest_key(http: httpx2.AsyncClient) -> str:
    """A new tenant with one service (a pasted key: nothing is sent in these tests)."""
    tenant = await http.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    assert tenant.status_code == 201
    service = await http.post(
        f"/admin/v1/tenants/{tenant.json()['id']}/services",
        json={"name": "Checkout", "routing_key": secrets.token_hex(16), "api": "v2"},
        headers=admin_headers(),
    )
    assert service.status_code == 201
    key: str = tenant.json()["ingest_key"]
    return key


# A session waiting for a lock on the events table: the ingest write the test holds up. Found
# by its lock, not its text: pg_stat_activity keeps only the start of a long statement.
WAITING_INSERT = """
    SELECT l.pid FROM pg_locks l
    WHERE NOT l.granted AND l.relation = CAST('events' AS regclass) AND l.pid <> pg_backend_pid()
    LIMIT 1
"""


def alert(dedup_key: str) -> dict[str, Any]:
    return {"dedup_key": dedup_key, "summary": "disk full on db-1"}


def assert_retry_later(response: httpx2.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["message"]


async def test_ingest_answers_503_while_the_database_is_down_and_202_once_it_is_back(
    http: httpx2.AsyncClient, postgres: Postgres
) -> None:
    key = await ingest_key(http)
    auth = {"Authorization": f"Bearer {key}"}
    assert (await http.post("/v1/alerts", json=alert("before"), headers=auth)).status_code == 202

    await stop(postgres)
    assert_retry_later(await http.post("/v1/alerts", json=alert("during"), headers=auth))
    drop_in = {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
    }
    assert_retry_later(await http.post("/v2/enqueue", json=drop_in))
    assert_retry_later(await http.get("/v1/events", headers=auth))
    assert_retry_later(await http.get("/admin/v1/tenants", headers=admin_headers()))

    await start(postgres)
    assert (await http.post("/v1/alerts", json=alert("after"), headers=auth)).status_code == 202
    stored = await scalar(
        postgres, "SELECT array_agg(dedup_key ORDER BY seq) FROM events WHERE dedup_key = ANY($1)",
        ["before", "during", "after"],
    )  # fmt: skip
    assert stored == ["before", "after"]


async def test_a_transaction_cut_off_by_the_database_is_answered_503_and_leaves_nothing(
    http: httpx2.AsyncClient, postgres: Postgres
) -> None:
    key = await ingest_key(http)
    auth = {"Authorization": f"Bearer {key}"}
    dedup_key = f"cut-{secrets.token_hex(4)}"
    blocker = await asyncpg.connect(postgres.url)
    try:
        # Hold the outbox so the request's INSERT waits inside its transaction; then the
        # database ends that session, as a crash or a failover would.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        request = asyncio.create_task(http.post("/v1/alerts", json=alert(dedup_key), headers=auth))
        waiting: list[object] = []

        async def insert_waits() -> bool:
            # Asked on a connection of its own: inside the blocker's transaction,
            # pg_stat_activity would stay as it was at its first reading.
            waiting[:] = [await scalar(postgres, WAITING_INSERT)]
            return waiting[0] is not None

        await eventually(insert_waits, "the ingest INSERT waiting for the lock")
        await blocker.execute("SELECT pg_terminate_backend($1)", waiting[0])
        assert_retry_later(await request)
        await transaction.rollback()
        found = await blocker.fetchval(
            "SELECT count(*) FROM events WHERE dedup_key = $1", dedup_key
        )
        assert found == 0
    finally:
        await blocker.close()

    # Sent again, it is accepted once: the pool let go of the session the database ended.
    assert (await http.post("/v1/alerts", json=alert(dedup_key), headers=auth)).status_code == 202
    assert (
        await scalar(postgres, "SELECT count(*) FROM events WHERE dedup_key = $1", dedup_key) == 1
    )
