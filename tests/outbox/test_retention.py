"""Retention: finished events and their attempts older than the period leave the database in
bounded batches; pending and young events stay; the alert lives and incident states left with
nothing to refer to them go too; two sweeps at once share the work; 0 keeps everything."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID, uuid4

from databases import Database

from app.composition import dispatch_config_of, run_background
from app.db.migrations import MIGRATIONS_DIR
from app.deps import Deps, new_http_client
from app.outbox.events import NewEvent, enqueue
from app.outbox.retention import DELETE_EVENTS, Retention, Swept, delete_batch, kept_for, sweep
from app.outbox.states import EventStatus
from tests.conftest import make_settings
from tests.outbox.test_services import _service

KEEP = timedelta(days=30)
OLD = timedelta(days=31)
YOUNG = timedelta(days=29)
NO_PAUSE = timedelta(0)


async def _event(
    db: Database,
    tenant_id: UUID,
    service_id: UUID,
    *,
    status: EventStatus,
    age: timedelta,
    dedup_key: str = "k",
    alert_id: UUID | None = None,
    attempts: int = 1,
) -> UUID:
    """An event in `status` that finished (or, pending, was accepted) `age` ago, with attempts."""
    [(event_id, _)] = await enqueue(
        db,
        [
            NewEvent(
                tenant_id=tenant_id,
                service_id=service_id,
                routing_key_hash="key-hash",
                dedup_key=dedup_key,
                kind="trigger",
                api="v2",
                body={"event_action": "trigger"},
                notes=(),
                source="test",
                alert_id=alert_id,
            )
        ],
    )
    finished = status not in (EventStatus.QUEUED, EventStatus.SENDING, EventStatus.HELD)
    # The test stands in for the weeks a dispatcher took: the status and times it would have left.
    await db.execute(
        """
        UPDATE events SET status = :status, created_at = now() - CAST(:age AS interval),
            finished_at = CASE WHEN :finished THEN now() - CAST(:age AS interval) END
        WHERE id = :id
        """,
        {"status": str(status), "age": age, "finished": finished, "id": event_id},
    )
    for _ in range(attempts):
        await db.execute(
            """
            INSERT INTO delivery_attempts (event_id, routing_key_hash, started_at, finished_at,
                outcome, http_status)
            VALUES (:id, 'key-hash', now() - CAST(:age AS interval),
                now() - CAST(:age AS interval), 'retry', 500)
            """,
            {"id": event_id, "age": age},
        )
    return event_id


async def _alert(
    db: Database, tenant_id: UUID, service_id: UUID, dedup_key: str, *, state: str, age: timedelta
) -> UUID:
    alert_id = uuid4()
    await db.execute(
        """
        INSERT INTO alerts (id, tenant_id, dedup_key, service_ids, state, opened_at, resolved_at,
            last_event_at)
        VALUES (:id, :tenant_id, :dedup_key, :service_ids, :state,
            now() - CAST(:age AS interval),
            CASE WHEN :state = 'resolved' THEN now() - CAST(:age AS interval) END,
            now() - CAST(:age AS interval))
        """,
        {
            "id": alert_id,
            "tenant_id": tenant_id,
            "dedup_key": dedup_key,
            "service_ids": [service_id],
            "state": state,
            "age": age,
        },
    )
    return alert_id


async def _incident(
    db: Database, tenant_id: UUID, service_id: UUID, dedup_key: str, age: timedelta
) -> None:
    await db.execute(
        """
        INSERT INTO incident_states (service_id, dedup_key, tenant_id, incident_id, status,
            changed_at)
        VALUES (:service_id, :dedup_key, :tenant_id, 'PINC', 'resolved',
            now() - CAST(:age AS interval))
        """,
        {"service_id": service_id, "dedup_key": dedup_key, "tenant_id": tenant_id, "age": age},
    )


async def _ids(db: Database, table: str) -> set[object]:
    column = "dedup_key" if table == "incident_states" else "id"
    rows = await db.fetch_all(f"SELECT {column} AS v FROM {table}")  # noqa: S608 - fixed names
    return {r._mapping["v"] for r in rows}


async def _attempts_of(db: Database, event_id: UUID) -> int:
    n = await db.fetch_val(
        "SELECT count(*) FROM delivery_attempts WHERE event_id = :id", {"id": event_id}
    )
    return int(n)


async def test_old_finished_events_go_with_their_attempts(db: Database) -> None:
    tenant_id, service_id = await _service(db, "key-hash")
    old = {
        status: await _event(db, tenant_id, service_id, status=status, age=OLD, attempts=2)
        for status in (
            EventStatus.DELIVERED,
            EventStatus.FAILED,
            EventStatus.CANCELLED,
            EventStatus.SKIPPED,
        )
    }
    young = await _event(db, tenant_id, service_id, status=EventStatus.DELIVERED, age=YOUNG)
    # Pending events are live work, however long they have waited.
    pending = {
        status: await _event(db, tenant_id, service_id, status=status, age=timedelta(days=90))
        for status in (EventStatus.QUEUED, EventStatus.SENDING, EventStatus.HELD)
    }

    swept = await sweep(db, KEEP, pause=NO_PAUSE)

    assert swept.events == len(old)
    assert await _ids(db, "events") == {young, *pending.values()}
    for event_id in old.values():
        assert await _attempts_of(db, event_id) == 0
    assert await _attempts_of(db, young) == 1
    for event_id in pending.values():
        assert await _attempts_of(db, event_id) == 1


async def test_a_batch_is_bounded_and_the_sweep_goes_on_until_nothing_is_left(
    db: Database,
) -> None:
    tenant_id, service_id = await _service(db, "key-hash")
    for n in range(5):
        await _event(
            db, tenant_id, service_id, status=EventStatus.DELIVERED, age=OLD, dedup_key=f"k{n}"
        )

    assert await delete_batch(db, DELETE_EVENTS, keep=KEEP, batch=2) == 2
    assert len(await _ids(db, "events")) == 3
    swept = await sweep(db, KEEP, batch=2, pause=NO_PAUSE)
    assert swept.events == 3
    assert await _ids(db, "events") == set()


async def test_resolved_alert_lives_go_once_their_events_have(db: Database) -> None:
    tenant_id, service_id = await _service(db, "key-hash")
    gone = await _alert(db, tenant_id, service_id, "gone", state="resolved", age=OLD)
    await _event(db, tenant_id, service_id, status=EventStatus.DELIVERED, age=OLD, alert_id=gone)
    await _incident(db, tenant_id, service_id, "gone", OLD)
    # Still open: its resolve must find where its trigger went, whatever its age.
    still_open = await _alert(db, tenant_id, service_id, "open", state="triggered", age=OLD)
    await _incident(db, tenant_id, service_id, "open", OLD)
    # Resolved long ago but one of its events is young.
    recent = await _alert(db, tenant_id, service_id, "recent", state="resolved", age=OLD)
    await _event(
        db, tenant_id, service_id, status=EventStatus.DELIVERED, age=YOUNG, alert_id=recent
    )
    await _incident(db, tenant_id, service_id, "recent", OLD)
    # An incident state whose alert went long ago but which PagerDuty updated lately.
    await _incident(db, tenant_id, service_id, "lately", YOUNG)

    swept = await sweep(db, KEEP, pause=NO_PAUSE)

    assert swept == Swept(events=1, alerts=1, incident_states=1)
    assert await _ids(db, "alerts") == {still_open, recent}
    assert await _ids(db, "incident_states") == {"open", "recent", "lately"}


async def test_zero_keeps_everything(db: Database) -> None:
    tenant_id, service_id = await _service(db, "key-hash")
    event_id = await _event(
        db, tenant_id, service_id, status=EventStatus.DELIVERED, age=timedelta(days=3650)
    )
    config = make_settings(PDCONNECT_RETENTION_DAYS="0")
    assert config.retention_days == 0
    assert kept_for(config.retention_days) is None

    # A process told to keep everything has no sweep to run: it returns at once.
    await asyncio.wait_for(Retention(db, days=0).run(asyncio.Event()), timeout=5)
    assert await sweep(db, kept_for(0)) == Swept()
    assert await _ids(db, "events") == {event_id}


async def test_the_background_sweep_removes_what_aged_out(db: Database) -> None:
    tenant_id, service_id = await _service(db, "key-hash")
    await _event(db, tenant_id, service_id, status=EventStatus.DELIVERED, age=OLD)
    young = await _event(db, tenant_id, service_id, status=EventStatus.DELIVERED, age=YOUNG)
    stop = asyncio.Event()
    retention = Retention(db, days=30, interval=timedelta(milliseconds=10), pause=NO_PAUSE)
    task = asyncio.create_task(retention.run(stop))
    try:
        for _ in range(500):
            if await _ids(db, "events") == {young}:
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert await _ids(db, "events") == {young}


async def test_two_sweeps_at_once_share_the_work_and_skip_what_is_locked(cdb: Database) -> None:
    tenant_id, service_id = await _service(cdb, "key-hash")
    for n in range(40):
        await _event(
            cdb, tenant_id, service_id, status=EventStatus.DELIVERED, age=OLD, dedup_key=f"k{n}"
        )
    locked = await _event(cdb, tenant_id, service_id, status=EventStatus.FAILED, age=OLD)

    # Another transaction holds one old event: the sweeps pass it by instead of waiting on it.
    async with cdb.connection() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM events WHERE id = :id FOR UPDATE", {"id": locked})
        first, second = await asyncio.wait_for(
            asyncio.gather(
                in_task(sweep(cdb, KEEP, batch=3, pause=NO_PAUSE)),
                in_task(sweep(cdb, KEEP, batch=3, pause=NO_PAUSE)),
            ),
            timeout=30,
        )
        assert first.events + second.events == 40
        assert await _ids(cdb, "events") == {locked}

    assert (await sweep(cdb, KEEP, pause=NO_PAUSE)).events == 1
    assert await _ids(cdb, "events") == set()


async def in_task(work: object) -> Swept:
    """Each sweep on a connection of its own (`databases` ties one to each task)."""
    assert asyncio.iscoroutine(work)
    result: Swept = await asyncio.create_task(work)
    return result


async def test_the_migration_applies_twice(db: Database) -> None:
    """Its number may change while other migrations land: applying it again changes nothing."""
    sql = (MIGRATIONS_DIR / "0010_retention.sql").read_text(encoding="utf-8")
    async with db.connection() as connection:
        await connection.raw_connection.execute(sql)
    indexes = await db.fetch_all(
        "SELECT indexname FROM pg_indexes WHERE indexname = ANY(:names)",
        {"names": ["events_finished", "alerts_resolved", "incident_states_changed"]},
    )
    assert len(indexes) == 3


async def test_a_worker_sweeps_in_its_background(cdb: Database, database_url: str) -> None:
    """What `pdconnect worker` (and each `serve` process) runs: retention beside the
    dispatcher."""
    tenant_id, service_id = await _service(cdb, "key-hash")
    await _event(cdb, tenant_id, service_id, status=EventStatus.DELIVERED, age=OLD)
    young = await _event(cdb, tenant_id, service_id, status=EventStatus.DELIVERED, age=YOUNG)
    config = make_settings(DATABASE_URL=database_url)
    http = new_http_client()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_background(Deps(config=config, db=cdb, http=http), dispatch_config_of(config), stop)
    )
    try:
        for _ in range(1000):
            if await _ids(cdb, "events") == {young}:
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await http.aclose()
    assert await _ids(cdb, "events") == {young}
