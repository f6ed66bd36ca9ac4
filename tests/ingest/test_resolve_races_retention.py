"""A resolve for an alert silent for the whole retention period, arriving while retention
deletes that alert's life: the request read the life, the sweep deleted it before the request
wrote the event that refers to it. The request is answered as one for an alert pdconnect does
not know (skipped, nothing to resolve), not with a foreign-key error.

Made deterministic with a second connection: it runs retention's delete of the life and holds
its transaction open, so the request reads the life (the delete is not committed yet) and
then waits on the row's lock; the delete commits once the request is seen waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextvars import Context

import httpx2
import pytest
from databases import Database

from app.config.model import Config
from app.deps import Deps
from app.ingest import store as ingest_store
from app.ingest.alert import Alert
from app.ingest.intake import NOTHING_TO_RESOLVE, accept
from app.outbox.retention import DELETE_ALERTS, delete_batch
from app.outbox.states import EventStatus
from tests.outbox.test_retention import KEEP, OLD, _alert
from tests.outbox.test_services import _service


@pytest.fixture
async def deps(cdb: Database, settings: Config) -> AsyncIterator[Deps]:
    async with httpx2.AsyncClient() as http:
        yield Deps(config=settings, db=cdb, http=http)


async def waiting_on_a_lock(db: Database) -> bool:
    # Asked inside the sweeper's transaction, which would otherwise see its first snapshot of
    # the activity again and again.
    await db.execute("SELECT pg_stat_clear_snapshot()")
    count = await db.fetch_val(
        """
        SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'
        """
    )
    return bool(count)


async def test_a_resolve_racing_the_sweep_of_its_life_is_skipped(cdb: Database, deps: Deps) -> None:
    tenant_id, service_id = await _service(cdb, "key-hash")
    # Only alerts labelled for it route: a resolve without its life goes nowhere.
    await ingest_store.replace_rules(
        cdb,
        tenant_id,
        [("Team db", [{"field": "labels.team", "op": "equals", "value": "db"}], (service_id,))],
    )
    life = await _alert(cdb, tenant_id, service_id, "disk-db1", state="resolved", age=OLD)
    resolve = Alert(status="resolved", dedup_key="disk-db1")

    async with cdb.connection() as sweeper:
        transaction = await sweeper.transaction()
        try:
            # Retention's own statement, on its own connection, not yet committed.
            deleted = await delete_batch(sweeper, DELETE_ALERTS, keep=KEEP, batch=10)  # type: ignore[arg-type]
            assert deleted == 1
            # A context of its own, so that the request has a connection of its own
            # (`databases` ties one to the context a task starts in).
            request = asyncio.create_task(
                accept(deps, tenant_id, [resolve], source="native"), context=Context()
            )
            async with asyncio.timeout(30):
                while not await waiting_on_a_lock(cdb):
                    assert not request.done(), request.result()
                    await asyncio.sleep(0.01)
        except BaseException:
            await transaction.rollback()
            raise
        await transaction.commit()
    async with asyncio.timeout(30):
        [accepted] = await request

    assert accepted.status == EventStatus.SKIPPED
    assert accepted.service is None
    assert await cdb.fetch_val("SELECT count(*) FROM alerts WHERE id = :id", {"id": life}) == 0
    reason = await cdb.fetch_val(
        "SELECT last_error FROM events WHERE id = :id", {"id": accepted.id}
    )
    assert reason == NOTHING_TO_RESOLVE
