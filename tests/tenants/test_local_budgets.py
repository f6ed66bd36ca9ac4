"""Ingest keys' rate budgets kept in each process's memory (app/tenants/ratelimit.py,
LocalBudgets) and synced with the shared budget in PostgreSQL: exact in one process, within the
stated tolerance across several, on a committed database (`cdb`) as separate pods share it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import httpx2
import pytest
from databases import Database

from app.config.model import Config
from app.db.changes import ChangeCache
from app.deps import Deps
from app.main import create_app
from app.tenants import ratelimit_store, store
from app.tenants.keys import issue_ingest_key
from app.tenants.ratelimit import (
    EventBudget,
    IngestRateLimit,
    IngestRateLimited,
    LocalBudgets,
    local_budgets,
)
from app.tenants.ratelimit_store import Spent
from tests.conftest import BASE_URL, FakeClock, make_settings
from tests.plans import assert_keeps_one_plan
from tests.security.helpers import bearer, sending_tenant

# One event a second, in bursts of ten.
LIMIT = IngestRateLimit(per_second=1, burst=10)


@pytest.fixture
async def key_id(cdb: Database, deps: Deps) -> UUID:
    tenant = await store.insert_tenant(cdb, name="Acme", external_id=None)
    assert tenant is not None
    key, _ = await issue_ingest_key(cdb, deps.ingest_key_hasher, tenant.id)
    return key.id


@pytest.fixture
async def processes(cdb: Database, clock: FakeClock) -> AsyncIterator[list[LocalBudgets]]:
    """Two processes' budgets on one database."""
    budgets = [LocalBudgets(cdb, clock), LocalBudgets(cdb, clock)]
    yield budgets
    for one in budgets:
        await one.close()


def check(budgets: LocalBudgets, key_id: UUID, clock: FakeClock) -> Spent:
    """A request's key check: one event."""
    return budgets.take(key_id, now=clock(), cost=LIMIT.interval, fits=LIMIT.tolerance)


def admitted(budgets: LocalBudgets, key_id: UUID, clock: FakeClock, tries: int) -> int:
    return sum(check(budgets, key_id, clock).allowed for _ in range(tries))


async def test_one_process_keeps_the_limit_exactly(
    processes: list[LocalBudgets], key_id: UUID, clock: FakeClock
) -> None:
    one, _ = processes
    assert admitted(one, key_id, clock, 15) == LIMIT.burst
    refused = check(one, key_id, clock)
    assert not refused.allowed
    assert LIMIT.retry_after(refused.tat, clock()) == 1
    assert await one.sync()
    assert not check(one, key_id, clock).allowed
    clock.advance(seconds=1)
    assert admitted(one, key_id, clock, 5) == 1
    clock.advance(minutes=5)
    assert admitted(one, key_id, clock, 15) == LIMIT.burst


async def test_processes_see_each_others_spending_at_their_next_sync(
    processes: list[LocalBudgets], key_id: UUID, clock: FakeClock
) -> None:
    first, second = processes
    assert admitted(first, key_id, clock, 1) == 1
    assert admitted(second, key_id, clock, 1) == 1
    assert admitted(first, key_id, clock, 5) == 5
    assert await first.sync()
    assert await second.sync()
    # The second process knows of the first's six: three left for it.
    assert admitted(second, key_id, clock, 10) == 3
    assert await second.sync()
    assert await first.sync()
    assert not check(first, key_id, clock).allowed


async def test_n_processes_overshoot_by_at_most_n_minus_one_bursts_then_repay_it(
    processes: list[LocalBudgets], key_id: UUID, clock: FakeClock
) -> None:
    """The tolerance of the module docstring: before they sync, each process may admit one
    burst; the excess is then owed in the shared budget and refuses everyone until repaid."""
    first, second = processes
    together = admitted(first, key_id, clock, 50) + admitted(second, key_id, clock, 50)
    assert together <= LIMIT.burst + (len(processes) - 1) * LIMIT.burst
    for one in (first, second, first):
        assert await one.sync()
    # 20 events admitted at once on a budget of 1 a second in bursts of 10: the next is due
    # when the tat (20 s ahead) is back within the tolerance (9 s), 11 s from now.
    clock.advance(seconds=10)
    assert not check(first, key_id, clock).allowed
    assert not check(second, key_id, clock).allowed
    clock.advance(seconds=1)
    assert check(second, key_id, clock).allowed


async def test_a_sync_stamps_the_keys_last_use(
    processes: list[LocalBudgets], key_id: UUID, clock: FakeClock, cdb: Database
) -> None:
    one, _ = processes
    check(one, key_id, clock)
    assert await one.sync()
    used = await cdb.fetch_val(
        "SELECT last_used_at FROM ingest_keys WHERE id = :id", {"id": key_id}
    )
    assert used is not None


async def test_event_budgets_in_memory_touch_no_database(
    database_url: str, key_id: UUID, clock: FakeClock
) -> None:
    """`EventBudget.spend` runs inside the group commit's transaction: in memory, it must not
    need a connection (this one was never opened)."""
    unopened = Database(database_url)
    budgets = LocalBudgets(unopened, clock)
    try:
        budget = EventBudget(
            db=unopened, key_id=key_id, limit=LIMIT, max_events=1000, now=clock(), local=budgets
        )
        # The request's key check paid one event; its fan-out pays the rest of the burst.
        assert check(budgets, key_id, clock).allowed
        await budget.spend(LIMIT.burst)
        with pytest.raises(IngestRateLimited) as refused:
            await budget.spend(2)
        assert "this request would write 2, and" in str(refused.value)
    finally:
        await budgets.close()


@pytest.fixture
async def served(
    cdb: Database, database_url: str, clock: FakeClock
) -> AsyncIterator[httpx2.AsyncClient]:
    """The app as `pdconnect serve` builds it (with its cache), one event a second per key."""
    settings: Config = make_settings(PDCONNECT_INGEST_RATE_LIMIT="1")
    http = httpx2.AsyncClient()
    deps = Deps(config=settings, db=cdb, http=http, clock=clock, cache=ChangeCache(database_url))
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client
    finally:
        budgets = local_budgets(deps)
        assert budgets is not None
        await budgets.close()
        await http.aclose()


async def test_the_answers_are_those_of_the_shared_budget(
    served: httpx2.AsyncClient, clock: FakeClock
) -> None:
    tenant = await sending_tenant(served, "Acme")
    key = tenant["ingest_key"]
    for n in range(LIMIT.burst):
        sent = await served.post(
            "/v1/alerts", json={"summary": "disk full", "dedup_key": f"d{n}"}, headers=bearer(key)
        )
        assert sent.status_code == 202, sent.text
    refused = await served.post(
        "/v1/alerts", json={"summary": "disk full", "dedup_key": "late"}, headers=bearer(key)
    )
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert "too many requests with this ingest key" in refused.json()["error"]["message"]
    clock.advance(seconds=1)
    later = await served.post(
        "/v1/alerts", json={"summary": "disk full", "dedup_key": "later"}, headers=bearer(key)
    )
    assert later.status_code == 202, later.text


async def test_the_sync_keeps_one_plan_whatever_the_number_of_keys(
    db: Database, deps: Deps, clock: FakeClock
) -> None:
    tenant = await store.insert_tenant(db, name="Acme", external_id=None)
    assert tenant is not None
    keys = [(await issue_ingest_key(db, deps.ingest_key_hasher, tenant.id))[0] for _ in range(4)]
    # Tables the size of a working deployment's, as the planner's statistics see them.
    await db.execute(
        "INSERT INTO ingest_keys (tenant_id, key_hash, prefix) "
        "SELECT :tenant_id, 'hash-' || n, 'pdc_x' FROM generate_series(1, 5000) AS n",
        {"tenant_id": tenant.id},
    )
    await db.execute(
        "INSERT INTO ingest_key_budgets (key_id, tat, last_allowed) "
        "SELECT id, now(), true FROM ingest_keys WHERE key_hash LIKE 'hash-%'"
    )
    await db.execute("ANALYZE ingest_keys, ingest_key_budgets")
    for size in (1, 1, 1, 1, 1, 1, 4, 1, 1, 3):
        spent = [(key.id, LIMIT.interval, True) for key in keys[:size]]
        shared = await ratelimit_store.sync_budgets(db, spent, now=clock())
        assert set(shared) == {key.id for key in keys[:size]}
    await assert_keeps_one_plan(db, "INSERT INTO ingest_key_budgets AS b")
