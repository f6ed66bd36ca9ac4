"""What routing and authentication need is kept in the process (app/db/changes.py) and dropped
on PostgreSQL's change notices: on a committed database (`cdb`), since a notice is delivered
only at commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx2
import pytest
from databases import Database

from app.config.model import Config
from app.crypto import INGEST_KEY_SALT, Hasher
from app.db.changes import CHANGES_CHANNEL, LISTENER_NAME, ChangeCache, TenantTable
from app.db.migrations import MIGRATIONS_DIR
from app.db.pool import asyncpg_dsn
from app.deps import Deps
from app.ingest import store as ingest_store
from app.ingest.intake import view_of
from app.ingest.view import RoutingView
from app.main import create_app
from app.tenants import store as tenant_store
from app.tenants.keys import authenticate, issue_ingest_key
from tests.conftest import BASE_URL, FakeClock, admin_headers

# The issue's promise: a change is seen by every process within a second.
WITHIN_SECONDS = 1.0


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = WITHIN_SECONDS) -> None:
    """`check` holds within `seconds` (asked every 20 ms)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while not await check():
        assert loop.time() < until, f"not within {seconds} s"
        await asyncio.sleep(0.02)


async def listening(cache: ChangeCache) -> bool:
    return cache.live


@pytest.fixture
async def cached(
    cdb: Database, database_url: str, settings: Config, clock: FakeClock
) -> AsyncIterator[Deps]:
    """Deps as `pdconnect serve` has them: a cache whose listener runs."""
    cache = ChangeCache(database_url)
    http = httpx2.AsyncClient()
    stop = asyncio.Event()
    running = asyncio.create_task(cache.run(stop))
    try:
        await eventually(lambda: listening(cache), seconds=10)
        yield Deps(config=settings, db=cdb, http=http, clock=clock, cache=cache)
    finally:
        stop.set()
        await running
        await http.aclose()


@pytest.fixture
async def admin(cached: Deps) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=create_app(cached), raise_app_exceptions=False)
    async with httpx2.AsyncClient(
        transport=transport, base_url=BASE_URL, headers=admin_headers()
    ) as http:
        yield http


async def settled(deps: Deps) -> None:
    """Every notice sent so far has reached the cache: notices arrive in commit order, so once
    one sent now has dropped its entry, those before it were heard."""
    assert deps.cache is not None
    barrier = uuid4()
    table = deps.cache.table("the tests' barrier", 1)
    table.put("barrier", barrier, True)
    await deps.db.execute(
        "SELECT pg_notify(:channel, :tenant)", {"channel": CHANGES_CHANNEL, "tenant": str(barrier)}
    )

    async def heard() -> bool:
        return table.get("barrier") is None

    await eventually(heard)


async def new_tenant(
    admin: httpx2.AsyncClient, deps: Deps, name: str = "Acme"
) -> tuple[UUID, str, UUID]:
    """A tenant with one service: its id, its ingest key and the service's id; the notices of
    their writes heard, so that what a test reads next is kept."""
    created = await admin.post("/admin/v1/tenants", json={"name": name})
    assert created.status_code == 201, created.text
    tenant = created.json()
    service = await admin.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Ops", "routing_key": name.encode().hex().ljust(32, "0"), "api": "v2"},
    )
    assert service.status_code == 201, service.text
    await settled(deps)
    return UUID(tenant["id"]), tenant["ingest_key"], UUID(service.json()["id"])


async def changed_from(deps: Deps, tenant_id: UUID, before: RoutingView) -> bool:
    return await view_of(deps, tenant_id) is not before


async def test_a_view_is_read_once_then_again_after_each_change(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    tenant_id, _, ops = await new_tenant(admin, cached)
    first = await view_of(cached, tenant_id)
    assert await view_of(cached, tenant_id) is first

    await ingest_store.replace_rules(cdb, tenant_id, [("all", [], (ops,))])
    await eventually(lambda: changed_from(cached, tenant_id, first))
    ruled = await view_of(cached, tenant_id)
    assert [r.name for r in ruled.rules] == ["all"]

    await ingest_store.set_severity_map(cdb, tenant_id, {"overrides": {"sev0": "critical"}})
    await eventually(lambda: changed_from(cached, tenant_id, ruled))
    mapped = await view_of(cached, tenant_id)
    assert mapped.severities.overrides == {"sev0": "critical"}

    await cdb.execute("UPDATE pd_services SET name = 'Operations' WHERE id = :id", {"id": ops})
    await eventually(lambda: changed_from(cached, tenant_id, mapped))
    assert [s.name for s in (await view_of(cached, tenant_id)).services] == ["Operations"]


async def test_a_service_added_or_removed_is_seen(cached: Deps, admin: httpx2.AsyncClient) -> None:
    tenant_id, _, ops = await new_tenant(admin, cached)
    before = await view_of(cached, tenant_id)
    added = await admin.post(
        f"/admin/v1/tenants/{tenant_id}/services",
        json={"name": "Db", "routing_key": "d" * 32, "api": "v2"},
    )
    assert added.status_code == 201, added.text
    await eventually(lambda: changed_from(cached, tenant_id, before))
    both = await view_of(cached, tenant_id)
    assert {s.name for s in both.services} == {"Ops", "Db"}

    removed = await admin.delete(f"/admin/v1/tenants/{tenant_id}/services/{ops}")
    assert removed.status_code in (200, 204), removed.text
    await eventually(lambda: changed_from(cached, tenant_id, both))
    assert [s.name for s in (await view_of(cached, tenant_id)).services] == ["Db"]


async def test_keys_are_kept_until_revoked_and_a_new_key_works_at_once(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    tenant_id, plaintext, _ = await new_tenant(admin, cached)
    hasher, cache = cached.ingest_key_hasher, cached.cache
    key = await authenticate(cdb, hasher, plaintext, cache=cache)
    assert key is not None
    assert await authenticate(cdb, hasher, plaintext, cache=cache) is key

    # A miss is not kept: a key issued now authenticates on its first request.
    issued = await admin.post(f"/admin/v1/tenants/{tenant_id}/ingest-keys")
    assert issued.status_code == 201, issued.text
    other = await authenticate(cdb, hasher, issued.json()["ingest_key"], cache=cache)
    assert other is not None

    await tenant_store.revoke_ingest_key(cdb, tenant_id=tenant_id, key_id=key.id)

    async def refused() -> bool:
        return await authenticate(cdb, hasher, plaintext, cache=cache) is None

    await eventually(refused)


async def test_a_deleted_tenant_loses_its_keys(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    tenant_id, plaintext, _ = await new_tenant(admin, cached)
    hasher, cache = cached.ingest_key_hasher, cached.cache
    assert await authenticate(cdb, hasher, plaintext, cache=cache) is not None
    assert await tenant_store.delete_tenant(cdb, tenant_id)

    async def refused() -> bool:
        return await authenticate(cdb, hasher, plaintext, cache=cache) is None

    await eventually(refused)


async def test_stamping_a_keys_last_use_keeps_it(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    """The writes that change nothing a cache holds send no notice."""
    _, plaintext, _ = await new_tenant(admin, cached, "Acme")
    other_id, _, _ = await new_tenant(admin, cached, "Globex")
    hasher, cache = cached.ingest_key_hasher, cached.cache
    key = await authenticate(cdb, hasher, plaintext, cache=cache)
    assert key is not None
    await cdb.execute(
        "UPDATE ingest_keys SET last_used_at = now() - INTERVAL '1 hour' WHERE id = :id",
        {"id": key.id},
    )
    # Notices arrive in commit order: once the other tenant's is in, any of this one's was too.
    other = await view_of(cached, other_id)
    await ingest_store.set_severity_map(cdb, other_id, {"default": "error"})
    await eventually(lambda: changed_from(cached, other_id, other))
    assert await authenticate(cdb, hasher, plaintext, cache=cache) is key


async def test_without_its_listener_the_cache_reads_through(
    cdb: Database, settings: Config, database_url: str
) -> None:
    http = httpx2.AsyncClient()
    try:
        deps = Deps(config=settings, db=cdb, http=http, cache=ChangeCache(database_url))
        tenant = await tenant_store.insert_tenant(cdb, name="Acme", external_id=None)
        assert tenant is not None
        first = await view_of(deps, tenant.id)
        assert await view_of(deps, tenant.id) is not first
    finally:
        await http.aclose()


async def test_a_lost_listener_drops_everything_and_comes_back(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    tenant_id, _, _ = await new_tenant(admin, cached)
    cache = cached.cache
    assert cache is not None
    first = await view_of(cached, tenant_id)
    await cdb.execute(
        """
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = :name AND datname = current_database()
        """,
        {"name": LISTENER_NAME},
    )
    # Gone, then back (a few seconds at most: its first retry is half a second away).
    await eventually(lambda: changed_from(cached, tenant_id, first), seconds=10)
    await eventually(lambda: listening(cache), seconds=10)
    again = await view_of(cached, tenant_id)
    assert await view_of(cached, tenant_id) is again


async def tenant_and_table(
    admin: httpx2.AsyncClient, deps: Deps
) -> tuple[UUID, ChangeCache, TenantTable[str, Any]]:
    """A new tenant, the cache, and a table of the test's own in it."""
    tenant_id, _, _ = await new_tenant(admin, deps)
    cache = deps.cache
    assert cache is not None
    return tenant_id, cache, cache.table("a table of this test", 10)


async def change_and_hear(cache: ChangeCache, cdb: Database, tenant_id: UUID) -> None:
    """Change the tenant's severity map, and wait until the cache has heard of it."""
    notices = cache.notices
    await ingest_store.set_severity_map(cdb, tenant_id, {"default": "error"})

    async def noticed() -> bool:
        return cache.notices > notices

    await eventually(noticed)


async def test_a_read_that_raced_a_change_is_not_kept(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    tenant_id, cache, table = await tenant_and_table(admin, cached)

    async def load_then_change() -> str:
        # Read before the change commits: what was read is already stale when it is returned.
        await change_and_hear(cache, cdb, tenant_id)
        return "read before the change"

    assert await cache.read(table, "k", load_then_change, lambda _: tenant_id) is not None
    assert table.get("k") is None


async def test_one_notice_per_statement_and_tenant(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database, database_url: str
) -> None:
    acme, _, acme_ops = await new_tenant(admin, cached, "Acme")
    globex, _, globex_ops = await new_tenant(admin, cached, "Globex")
    await ingest_store.replace_rules(cdb, acme, [("a", [], (acme_ops,)), ("b", [], (acme_ops,))])
    await ingest_store.replace_rules(cdb, globex, [("c", [], (globex_ops,))])
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        await conn.add_listener(CHANGES_CHANNEL, lambda *args: heard.put_nowait(args[3]))
        await cdb.execute(
            "DELETE FROM routes WHERE tenant_id IN (:a, :b)", {"a": acme, "b": globex}
        )
        # A barrier: this notice comes after the DELETE's, in commit order.
        await cdb.execute(f"NOTIFY {CHANGES_CHANNEL}, 'end'")
        payloads = [await asyncio.wait_for(heard.get(), 5)]
        while payloads[-1] != "end":
            payloads.append(await asyncio.wait_for(heard.get(), 5))
    finally:
        await conn.close()
    assert sorted(payloads[:-1]) == sorted([str(acme), str(globex)])


async def test_the_migration_applies_twice(cdb: Database, database_url: str) -> None:
    """Its number may change as other migrations land, so it must be safe to run again."""
    (migration,) = MIGRATIONS_DIR.glob("*_change_notices.sql")
    # The triggers of this migration's tables (later migrations add their own tables').
    count = (
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%\\_notice' AND tgrelid::regclass::text"
        " IN ('pd_services', 'routes', 'ingest_keys', 'tenants')"
    )
    before = await cdb.fetch_val(count)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(migration.read_text())
    finally:
        await conn.close()
    assert await cdb.fetch_val(count) == before == 15


async def test_a_key_moved_to_a_new_secret_key_is_kept_under_its_new_hash(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    """SECRET_KEY rotated: the key hashed under the previous one is found, moved over, and its
    entry kept under the hash the current key gives it."""
    tenant_id, _, _ = await new_tenant(admin, cached)
    old = Hasher("o" * 48, INGEST_KEY_SALT)
    rotated = Hasher("n" * 48, INGEST_KEY_SALT, ["o" * 48])
    issued, plaintext = await issue_ingest_key(cdb, old, tenant_id)
    moved = await authenticate(cdb, rotated, plaintext, cache=cached.cache)
    assert moved is not None
    assert moved.id == issued.id
    # The move's own notice may drop the entry once; read after it, the key stays.
    await settled(cached)
    kept = await authenticate(cdb, rotated, plaintext, cache=cached.cache)
    assert await authenticate(cdb, rotated, plaintext, cache=cached.cache) is kept
    assert await authenticate(cdb, old, plaintext, cache=cached.cache) is None


async def test_while_the_database_refuses_the_listener_every_read_goes_through() -> None:
    nowhere = ChangeCache("postgresql://pdconnect@127.0.0.1:1/nowhere")
    stop = asyncio.Event()
    running = asyncio.create_task(nowhere.run(stop))
    tenant_id = uuid4()
    table = nowhere.table("a table of this test", 10)
    reads = 0

    async def load() -> str:
        nonlocal reads
        reads += 1
        return "read"

    for _ in range(3):
        await asyncio.sleep(0.05)
        assert await nowhere.read(table, "k", load, lambda _: tenant_id) == "read"
    assert (reads, len(table), nowhere.live) == (3, 0, False)
    stop.set()
    await running


async def test_concurrent_misses_of_one_key_share_one_read(
    cached: Deps, admin: httpx2.AsyncClient
) -> None:
    """Right after a change, every request of a busy tenant misses its view at once: one read
    asks PostgreSQL and the others wait for its answer, instead of each building the view."""
    tenant_id, cache, table = await tenant_and_table(admin, cached)
    reads = 0
    release = asyncio.Event()

    async def slow_read() -> str:
        nonlocal reads
        reads += 1
        await release.wait()
        return f"read {reads}"

    waiting = [
        asyncio.create_task(cache.read(table, "k", slow_read, lambda _: tenant_id))
        for _ in range(20)
    ]
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(*waiting) == ["read 1"] * 20
    assert reads == 1
    assert table.get("k") == "read 1"


async def test_a_miss_after_a_change_does_not_take_a_read_begun_before_it(
    cached: Deps, admin: httpx2.AsyncClient, cdb: Database
) -> None:
    tenant_id, cache, table = await tenant_and_table(admin, cached)
    release = asyncio.Event()
    reads: list[str] = []

    async def read_before_change() -> str:
        reads.append("before")
        await release.wait()
        return "before the change"

    async def read_after_change() -> str:
        reads.append("after")
        return "after the change"

    early = asyncio.create_task(cache.read(table, "k", read_before_change, lambda _: tenant_id))
    await asyncio.sleep(0.05)
    await change_and_hear(cache, cdb, tenant_id)
    late = await cache.read(table, "k", read_after_change, lambda _: tenant_id)
    release.set()
    assert await early == "before the change"
    assert late == "after the change"
    assert reads == ["before", "after"]
    # The late read began after the change and is kept; the early one is not.
    assert table.get("k") == "after the change"


async def test_a_failed_shared_read_fails_its_waiters_and_the_next_miss_reads_again(
    cached: Deps, admin: httpx2.AsyncClient
) -> None:
    tenant_id, cache, table = await tenant_and_table(admin, cached)
    release = asyncio.Event()

    async def failing_read() -> str:
        await release.wait()
        raise ConnectionResetError("the database went away")

    async def good_read() -> str:
        return "read again"

    first = asyncio.create_task(cache.read(table, "k", failing_read, lambda _: tenant_id))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(cache.read(table, "k", good_read, lambda _: tenant_id))
    await asyncio.sleep(0.02)
    release.set()
    for task in (first, second):
        with pytest.raises(ConnectionResetError):
            await task
    assert await cache.read(table, "k", good_read, lambda _: tenant_id) == "read again"
