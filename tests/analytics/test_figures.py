"""Analytics figures match a scripted history: known trigger, acknowledge and resolve times
give known MTTA and MTTR, known answer times give time to page within a bucket, per service and
for the tenant, over each window; the fold is incremental and idempotent; breaches of the
targets are found and listed once; retention keeps what the fold has not counted."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from databases import Database

from app.analytics import store
from app.analytics.figures import Analytics, Figures, analytics
from app.analytics.rollup import fold
from app.analytics.store import Target
from app.analytics.targets import save_targets
from app.analytics.windows import PAGE_BOUNDS, WINDOWS, bucket_of
from app.callbacks.store import publish_defaults
from app.outbox.retention import sweep
from app.outbox.states import EventStatus
from tests.analytics.history import History, tenant_with_services

MIN = timedelta(minutes=1)


def hour_start(now: datetime, hours_ago: int) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)


def service(found: Analytics, service_id: UUID | None) -> Figures:
    [match] = [s.figures for s in found.services if s.service_id == service_id]
    return match


def within_bucket(value: float | None, expected: float) -> bool:
    """`value` lies in the bucket `expected` falls in."""
    assert value is not None
    b = bucket_of(expected)
    low = PAGE_BOUNDS[b - 1] if b > 0 else 0.0
    high = PAGE_BOUNDS[b] if b < len(PAGE_BOUNDS) else float("inf")
    return low <= value <= high


async def scripted(
    db: Database, tenant_id: UUID | None = None
) -> tuple[UUID, UUID, UUID, datetime]:
    """Three hours ago, on services A and B:
    - a1 (A): acknowledged after 2 min, resolved after 10;
    - a2 (A): acknowledged after 4 min, resolved after 30;
    - a3 (B): resolved after 5 min, never acknowledged;
    - a4 (A and B): still open, not acknowledged.
    Events: on A ten triggers paged, eight in 12 ms and two in 2.5 s, and a resolve; on B one
    trigger paged in 0.5 s and one failed; two acknowledges skipped (nothing to send)."""
    now = await store.database_now(db)
    h = hour_start(now, 3)
    tenant_id, (a, b) = await tenant_with_services(db, "Checkout", "Payments", tenant_id=tenant_id)
    history = History(db, tenant_id)
    await history.alert("a1", [a], opened=h, acknowledged=h + 2 * MIN, resolved=h + 10 * MIN)
    await history.alert(
        "a2", [a], opened=h + 5 * MIN, acknowledged=h + 9 * MIN, resolved=h + 35 * MIN
    )
    await history.alert("a3", [b], opened=h + 60 * MIN, resolved=h + 65 * MIN)
    await history.alert("a4", [a, b], opened=h + 70 * MIN)
    for i in range(10):
        await history.event(
            a,
            accepted=h + i * MIN,
            paged_after=timedelta(seconds=0.012 if i < 8 else 2.5),
            source="db1" if i < 7 else "web1",
        )
    await history.event(a, accepted=h + 10 * MIN, kind="resolve")
    await history.event(b, accepted=h + 60 * MIN, paged_after=timedelta(seconds=0.5))
    await history.event(b, accepted=h + 61 * MIN, status=EventStatus.FAILED)
    for _ in range(2):
        await history.event(
            None, accepted=h + 62 * MIN, kind="acknowledge", status=EventStatus.SKIPPED
        )
    return tenant_id, a, b, h


async def test_figures_match_the_scripted_history(db: Database) -> None:
    tenant_id, a, b, _ = await scripted(db)
    await fold(db)
    found = await analytics(db, tenant_id, WINDOWS["24h"])

    on_a = service(found, a)
    assert (on_a.alerts, on_a.incidents, on_a.delivered, on_a.failed) == (10, 3, 11, 0)
    assert (on_a.acknowledged, on_a.mtta) == (2, 180.0)  # (120 + 240) / 2
    assert (on_a.resolved, on_a.mttr) == (2, 1200.0)  # (600 + 1800) / 2
    assert on_a.resolved_without_acknowledgement == 0
    assert on_a.success_rate == 1.0
    assert on_a.alerts_per_incident == pytest.approx(10 / 3)
    assert within_bucket(on_a.time_to_page_p50, 0.012)
    assert within_bucket(on_a.time_to_page_p95, 2.5)

    on_b = service(found, b)
    assert (on_b.alerts, on_b.incidents, on_b.delivered, on_b.failed) == (2, 2, 1, 1)
    assert (on_b.acknowledged, on_b.mtta) == (0, None)
    assert (on_b.resolved, on_b.mttr) == (1, 300.0)
    assert on_b.resolved_without_acknowledgement == 1
    assert on_b.success_rate == 0.5
    assert within_bucket(on_b.time_to_page_p50, 0.5)

    nowhere = service(found, None)
    assert (nowhere.suppressed, nowhere.alerts, nowhere.incidents) == (2, 0, 0)

    totals = found.totals
    assert (totals.alerts, totals.incidents, totals.suppressed) == (12, 5, 2)
    assert totals.success_rate == pytest.approx(12 / 13)
    assert (totals.mtta, totals.mttr) == (180.0, 900.0)  # mttr: (600 + 1800 + 300) / 3
    assert totals.resolved_without_acknowledgement == 1
    assert totals.alerts_per_incident == pytest.approx(12 / 5)
    assert within_bucket(totals.time_to_page_p50, 0.012)
    assert within_bucket(totals.time_to_page_p95, 2.5)
    assert found.sources == [("db1", 9), ("web1", 3)]
    # The bars: 24 hours, the alerts in the hour they arrived.
    assert len(found.bars) == 24
    assert sum(bar.alerts for bar in found.bars) == 12
    assert [bar.incidents for bar in found.bars if bar.incidents] == [2, 3]


async def test_windows_hold_what_arrived_in_them(db: Database) -> None:
    tenant_id, a, _, _ = await scripted(db)
    now = await store.database_now(db)
    history = History(db, tenant_id)
    await history.alert("old", [a], opened=now - timedelta(days=3))
    await history.event(a, accepted=now - timedelta(days=3))
    await history.alert("older", [a], opened=now - timedelta(days=20))
    await fold(db)

    day = await analytics(db, tenant_id, WINDOWS["24h"])
    week = await analytics(db, tenant_id, WINDOWS["7d"])
    month = await analytics(db, tenant_id, WINDOWS["30d"])
    assert [f.totals.incidents for f in (day, week, month)] == [5, 6, 7]
    assert [f.totals.alerts for f in (day, week, month)] == [12, 13, 13]
    assert (len(week.bars), len(month.bars)) == (7, 30)
    assert week.bars[-1].at == now.replace(hour=0, minute=0, second=0, microsecond=0)


async def test_the_fold_is_incremental_and_idempotent(db: Database) -> None:
    tenant_id, a, _, _ = await scripted(db)
    now = await store.database_now(db)
    # Fold up to ten minutes ago; then what finished since comes in the next fold, once.
    await fold(db, lag=10 * MIN)
    before = (await analytics(db, tenant_id, WINDOWS["24h"])).totals
    history = History(db, tenant_id)
    await history.alert("late", [a], opened=now - 6 * MIN, acknowledged=now - 5 * MIN)
    await history.event(a, accepted=now - 6 * MIN, paged_after=timedelta(seconds=0.02))
    await fold(db, lag=10 * MIN)
    assert (await analytics(db, tenant_id, WINDOWS["24h"])).totals == before

    await fold(db)
    after = (await analytics(db, tenant_id, WINDOWS["24h"])).totals
    assert (after.alerts, after.incidents, after.acknowledged) == (
        before.alerts + 1,
        before.incidents + 1,
        before.acknowledged + 1,
    )
    assert after.mtta == pytest.approx((120 + 240 + 60) / 3)
    # Folding again adds nothing.
    await fold(db)
    await fold(db)
    assert (await analytics(db, tenant_id, WINDOWS["24h"])).totals == after
    assert await store.folded_to(db) == now - 2 * MIN


async def test_an_acknowledge_after_the_fold_counts_in_its_alerts_hour(db: Database) -> None:
    tenant_id, a, b, h = await scripted(db)
    now = await store.database_now(db)
    await fold(db, lag=10 * MIN)
    # a4, open since h + 70 min, is acknowledged five minutes ago.
    await db.execute(
        """
        UPDATE alerts SET state = 'acknowledged', acknowledged_at = :at, last_event_at = :at
        WHERE dedup_key = 'a4'
        """,
        {"at": now - 5 * MIN},
    )
    await fold(db)
    found = await analytics(db, tenant_id, WINDOWS["24h"])
    took = (now - 5 * MIN - (h + 70 * MIN)).total_seconds()
    assert service(found, b).acknowledged == 1
    assert service(found, b).mtta == pytest.approx(took)
    assert service(found, a).mtta == pytest.approx((120 + 240 + took) / 3)


async def test_breaches_of_the_targets_are_found_and_listed_once(db: Database) -> None:
    tenant_id, _, _, _ = await scripted(db)
    await save_targets(
        db,
        tenant_id,
        [Target("critical", acknowledge_seconds=180, resolve_seconds=900)],
        actor="test",
    )
    # The vendor's product has a callback receiver (PDCONNECT_CALLBACK_URL).
    await publish_defaults(db, url_set=True)
    await fold(db)
    found = await analytics(db, tenant_id, WINDOWS["24h"])
    seen = {(b.dedup_key, b.target): b.took_seconds for b in found.breaches}
    assert seen == {
        ("a2", "acknowledge"): 240.0,  # acknowledged after 4 minutes
        ("a2", "resolve"): 1800.0,
        ("a3", "acknowledge"): 300.0,  # never acknowledged; resolved after 5 minutes
        ("a4", "acknowledge"): None,  # still waiting
        ("a4", "resolve"): None,
    }
    assert found.breach_counts == {"acknowledge": 3, "resolve": 2}

    # Each breach went to the vendor's product once, as a callback, and is marked told.
    assert await store.new_breaches(db) == []
    told = await _breach_callbacks(db)
    assert {(c["alert"]["dedup_key"], c["target"]): c["took_seconds"] for c in told} == seen
    assert all(c["severity"] == "critical" and c["target_seconds"] in (180, 900) for c in told)
    # Folding again finds nothing new, and tells nothing again.
    await fold(db)
    assert await store.new_breaches(db) == []
    assert len(await _breach_callbacks(db)) == len(seen)


async def _breach_callbacks(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch_all(
        "SELECT body FROM callbacks WHERE type = 'alert.sla_breached' ORDER BY seq"
    )
    return [json.loads(r._mapping["body"])["data"] for r in rows]


async def test_a_breach_found_while_waiting_gets_its_time(db: Database) -> None:
    tenant_id, _, _, h = await scripted(db)
    now = await store.database_now(db)
    await save_targets(db, tenant_id, [Target("critical", 180, None)], actor="test")
    await fold(db, lag=10 * MIN)
    await db.execute(
        """
        UPDATE alerts SET state = 'acknowledged', acknowledged_at = :at, last_event_at = :at
        WHERE dedup_key = 'a4'
        """,
        {"at": now - 5 * MIN},
    )
    await fold(db)
    [a4] = [
        b for b in (await analytics(db, tenant_id, WINDOWS["24h"])).breaches if b.dedup_key == "a4"
    ]
    assert a4.took_seconds == pytest.approx((now - 5 * MIN - (h + 70 * MIN)).total_seconds())


async def test_retention_keeps_what_the_fold_has_not_counted(db: Database) -> None:
    tenant_id, a, _, _ = await scripted(db)
    now = await store.database_now(db)
    history = History(db, tenant_id)
    old = await history.event(a, accepted=now - timedelta(days=2))

    async def kept() -> bool:
        found = await db.fetch_val("SELECT 1 FROM events WHERE id = :id", {"id": old})
        return found is not None

    await sweep(db, timedelta(days=1), pause=timedelta(0))
    assert await kept()
    await fold(db)
    await sweep(db, timedelta(days=1), pause=timedelta(0))
    assert not await kept()
    # Gone from the outbox, still counted.
    assert (await analytics(db, tenant_id, WINDOWS["7d"])).totals.alerts == 13
