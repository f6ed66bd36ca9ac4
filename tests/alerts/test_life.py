"""An alert's life as a request changes it, and as the store keeps it when requests race."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

from databases import Database

from app.alerts import store
from app.alerts.life import Life, Lives, live_services
from app.tenants.store import insert_tenant
from tests.plans import assert_keeps_one_plan

A, B, C = uuid4(), uuid4(), uuid4()


def test_a_trigger_opens_a_life_and_its_updates_follow_it() -> None:
    lives = Lives({})
    opened = lives.trigger("k", [A, B], summary="s", severity="error")
    assert lives.update("k", "acknowledged") == opened
    assert lives.current("k") == Life(opened, "k", (A, B), "acknowledged")
    assert lives.update("k", "resolved") == opened
    assert [s.kind for s in lives.steps] == ["open", "acknowledge", "resolve"]


def test_a_repeated_trigger_of_an_open_alert_adds_only_new_services() -> None:
    lives = Lives({"k": Life(A, "k", (B,), "acknowledged")})
    assert lives.trigger("k", [B, C], summary=None, severity=None) == A
    life = lives.current("k")
    assert life is not None
    assert (life.service_ids, life.state) == ((B, C), "acknowledged")
    [step] = lives.steps
    assert (step.kind, step.service_ids) == ("follow", (C,))


def test_a_trigger_after_the_resolve_opens_a_new_life() -> None:
    lives = Lives({"k": Life(A, "k", (B,), "resolved")})
    new = lives.trigger("k", [C], summary="s", severity=None)
    assert new != A
    assert lives.current("k") == Life(new, "k", (C,), "triggered")


def test_updates_of_a_closed_or_unknown_alert_change_nothing() -> None:
    lives = Lives({"k": Life(A, "k", (B,), "resolved")})
    assert lives.update("k", "resolved") == A
    assert lives.update("k", "acknowledged") == A
    assert lives.update("never", "resolved") is None
    assert lives.steps == []


def test_acknowledging_twice_keeps_one_state() -> None:
    lives = Lives({"k": Life(A, "k", (B,), "acknowledged")})
    lives.update("k", "acknowledged")
    life = lives.current("k")
    assert life is not None
    assert life.state == "acknowledged"


def test_removed_services_drop_out_of_where_an_alert_goes() -> None:
    assert live_services(Life(A, "k", (B, C), "triggered"), [C]) == (C,)


async def _lives(db: Database, tenant_id: UUID) -> dict[str, Life]:
    return {
        key: life for (_, key), life in (await store.latest_lives(db, [(tenant_id, "k")])).items()
    }


async def _tenant(db: Database) -> UUID:
    tenant = await insert_tenant(db, name="T", external_id=None)
    assert tenant is not None
    return tenant.id


async def test_two_requests_opening_one_alert_join_into_one_life(cdb: Database) -> None:
    tenant_id = await _tenant(cdb)
    service_a, service_b = uuid4(), uuid4()

    async def open_with(service: UUID) -> UUID:
        lives = Lives(await _lives(cdb, tenant_id))
        planned = lives.trigger("k", [service], summary="s", severity="error")
        async with cdb.connection() as connection, connection.transaction():
            actual = await store.apply_steps(cdb, [(tenant_id, s) for s in lives.steps])
        return actual.get(planned, planned)

    first, second = await asyncio.gather(open_with(service_a), open_with(service_b))
    assert first == second
    [life] = (await _lives(cdb, tenant_id)).values()
    assert set(life.service_ids) == {service_a, service_b}
    assert life.state == "triggered"


async def test_times_of_each_state_are_kept(db: Database) -> None:
    tenant_id = await _tenant(db)
    lives = Lives({})
    planned = lives.trigger("k", [A], summary="Disk full", severity="critical")
    lives.update("k", "acknowledged")
    lives.update("k", "resolved")
    actual = await store.apply_steps(db, [(tenant_id, s) for s in lives.steps])
    record = await store.get_alert(db, tenant_id, actual[planned])
    assert record is not None
    assert record.state == "resolved"
    assert (record.summary, record.severity) == ("Disk full", "critical")
    assert record.acknowledged_at is not None
    assert record.resolved_at is not None
    assert record.opened_at <= record.acknowledged_at <= record.resolved_at
    # A late acknowledge does not reopen it or move its times.
    later = Lives(await _lives(db, tenant_id))
    later.update("k", "acknowledged")
    await store.apply_steps(db, [(tenant_id, s) for s in later.steps])
    again = await store.get_alert(db, tenant_id, actual[planned])
    assert again == record


async def test_the_lives_read_keeps_one_plan_whatever_the_batch_size(db: Database) -> None:
    # Planned again at every batch, the read cost a lone request 0.1 ms of database time.
    tenant_id = await _tenant(db)
    # A table the size of a working deployment's, as the planner's statistics see it.
    await db.execute(
        "INSERT INTO alerts (tenant_id, dedup_key) "
        "SELECT :tenant_id, 'old-' || n FROM generate_series(1, 5000) AS n",
        {"tenant_id": tenant_id},
    )
    await db.execute("ANALYZE alerts")
    for size in (1, 1, 1, 1, 1, 1, 40, 1, 1, 3):
        keys = [(tenant_id, f"key-{n}") for n in range(size)]
        assert await store.latest_lives(db, keys) == {}
    await assert_keeps_one_plan(db, "DISTINCT ON (a.tenant_id, a.dedup_key)")
