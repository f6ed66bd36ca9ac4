"""An alert's time to acknowledge and to resolve are PagerDuty's: the incident's state changes
(by webhook or reconciliation) give the alert's life its acknowledged and resolved times when
it knew none or a later one, never a later one over an earlier."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from databases import Database

from app.alerts import incidents
from app.alerts.incidents import IncidentChange
from app.deps import Deps
from tests.rows import manual_service

OPENED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _life(deps: Deps) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A tenant with one service and an alert opened at OPENED."""
    tenant, service = await manual_service(deps.db, "h", name="Payments")
    alert = await deps.db.fetch_val(
        "INSERT INTO alerts (tenant_id, dedup_key, service_ids, opened_at, last_event_at) "
        "VALUES (:t, 'disk', ARRAY[CAST(:s AS uuid)], :at, :at) RETURNING id",
        {"t": tenant, "s": service, "at": OPENED},
    )
    return tenant, service, alert


def _change(tenant: uuid.UUID, service: uuid.UUID, status: str, minutes: int) -> IncidentChange:
    return IncidentChange(
        tenant_id=tenant,
        service_id=service,
        dedup_key="disk",
        incident_id="PINC1",
        incident_number=1,
        status=status,
        title=None,
        html_url=None,
        changed_by="Ada Lovelace",
        changed_at=OPENED + timedelta(minutes=minutes),
    )


async def _times(db: Database, alert: uuid.UUID) -> tuple[datetime | None, datetime | None]:
    row = await db.fetch_one(
        "SELECT acknowledged_at, resolved_at FROM alerts WHERE id = :id", {"id": alert}
    )
    assert row is not None
    return row._mapping["acknowledged_at"], row._mapping["resolved_at"]


async def test_pagerduty_times_become_the_alerts(deps: Deps) -> None:
    db = deps.db
    tenant, service, alert = await _life(deps)
    assert await incidents.apply(db, _change(tenant, service, "triggered", 0))
    assert await _times(db, alert) == (None, None)
    assert await incidents.apply(db, _change(tenant, service, "acknowledged", 4))
    assert await _times(db, alert) == (OPENED + timedelta(minutes=4), None)
    assert await incidents.apply(db, _change(tenant, service, "resolved", 30))
    assert await _times(db, alert) == (
        OPENED + timedelta(minutes=4),
        OPENED + timedelta(minutes=30),
    )


async def test_an_earlier_time_of_the_senders_is_kept(deps: Deps) -> None:
    db = deps.db
    tenant, service, alert = await _life(deps)
    await db.execute(
        "UPDATE alerts SET acknowledged_at = :at WHERE id = :id",
        {"at": OPENED + timedelta(minutes=2), "id": alert},
    )
    assert await incidents.apply(db, _change(tenant, service, "acknowledged", 4))
    assert (await _times(db, alert))[0] == OPENED + timedelta(minutes=2)


async def test_a_resolve_without_acknowledgement_leaves_none(deps: Deps) -> None:
    db = deps.db
    tenant, service, alert = await _life(deps)
    assert await incidents.apply(db, _change(tenant, service, "resolved", 9))
    assert await _times(db, alert) == (None, OPENED + timedelta(minutes=9))
