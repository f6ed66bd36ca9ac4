"""A rule, service or key change made through one web process is seen by another within a
second: two `pdconnect serve` processes on one committed database, each keeping routing views
and ingest keys in memory (app/db/changes.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from typing import Any

import httpx2
import pytest
from databases import Database

from app.crypto import new_fernet_key
from app.db.changes import LISTENER_NAME
from tests.conftest import admin_headers
from tests.security.served import pdconnect_serve

WITHIN_SECONDS = 1.0
_dedup_keys = itertools.count()


@pytest.fixture
async def two(cdb: Database, database_url: str) -> AsyncIterator[tuple[str, str]]:
    """The base URLs of two served processes, once both listen for changes."""
    shared = {"ENCRYPTION_KEYS": new_fernet_key()}
    with ExitStack() as stack:
        ports = [stack.enter_context(pdconnect_serve(database_url, **shared)) for _ in range(2)]
        await until(lambda: listeners(cdb), lambda n: n >= 2, seconds=30)
        yield (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")


async def listeners(cdb: Database) -> int:
    count = await cdb.fetch_val(
        """
        SELECT count(*) FROM pg_stat_activity
        WHERE application_name = :name AND datname = current_database()
        """,
        {"name": LISTENER_NAME},
    )
    return int(count)


async def until(
    ask: Callable[[], Any], holds: Callable[[Any], bool], seconds: float = WITHIN_SECONDS
) -> Any:
    """Ask until the answer holds, within `seconds`; the answer."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    while True:
        answer = await ask()
        if holds(answer):
            return answer
        assert loop.time() < ends, f"not within {seconds} s: {answer}"
        await asyncio.sleep(0.02)


def alert(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"summary": "disk full", "dedup_key": f"a{next(_dedup_keys)}", "labels": labels or {}}


def routed_to(response: httpx2.Response) -> str | int:
    """The service an accepted alert went to, else the status it was answered."""
    if response.status_code != 202:
        return response.status_code
    (event,) = response.json()["events"]
    name: str = event["service_name"]
    return name


async def test_a_change_through_one_process_is_seen_by_the_other(
    two: tuple[str, str],
) -> None:
    first, second = two
    async with httpx2.AsyncClient(headers=admin_headers(), timeout=10) as admin:
        tenant = (await admin.post(f"{first}/admin/v1/tenants", json={"name": "Acme"})).json()
        base = f"{first}/admin/v1/tenants/{tenant['id']}"
        ids = {}
        for name, key in (("Ops", "a" * 32), ("Db", "b" * 32)):
            added = await admin.post(
                f"{base}/services", json={"name": name, "routing_key": key, "api": "v2"}
            )
            assert added.status_code == 201, added.text
            ids[name] = added.json()["id"]

        def rules(team_db_to: str) -> dict[str, Any]:
            equals = {"field": "labels.team", "op": "equals", "value": "db"}
            return {
                "routes": [
                    {"name": "db", "conditions": [equals], "service_ids": [ids[team_db_to]]},
                    {"name": "rest", "service_ids": [ids["Ops"]]},
                ]
            }

        assert (await admin.put(f"{base}/routes", json=rules("Db"))).status_code == 200
        sender = {"Authorization": f"Bearer {tenant['ingest_key']}"}
        async with httpx2.AsyncClient(base_url=second, headers=sender, timeout=10) as other:

            async def send(labels: dict[str, str] | None = None) -> str | int:
                return routed_to(await other.post("/v1/alerts", json=alert(labels)))

            async def team_db() -> str | int:
                return await send({"team": "db"})

            # Read by the second process (and kept) while the first rule holds.
            assert await until(team_db, lambda to: to == "Db", seconds=5) == "Db"

            # A rule changed through the first process.
            assert (await admin.put(f"{base}/routes", json=rules("Ops"))).status_code == 200
            await until(team_db, lambda to: to == "Ops")

            # No rules and two services: refused, until a service removed through the first
            # leaves one, which takes everything.
            assert (await admin.put(f"{base}/routes", json={"routes": []})).status_code == 200
            await until(send, lambda to: to == 422)
            removed = await admin.delete(f"{base}/services/{ids['Db']}")
            assert removed.status_code in (200, 204), removed.text
            await until(send, lambda to: to == "Ops")

            # The key revoked through the first process.
            revoked = await admin.delete(f"{base}/ingest-keys/{tenant['ingest_key_id']}")
            assert revoked.status_code in (200, 204), revoked.text
            await until(send, lambda to: to == 401)
