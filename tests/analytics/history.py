"""A scripted history, written the way the product writes it: alert lives through
app/alerts/store.py's steps, events through the outbox's enqueue, attempts as the dispatcher
records them; then the times moved to known moments (the test stands in for the hours that
passed between those writes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from databases import Database

from app.alerts.life import Step
from app.alerts.store import apply_steps
from app.installations import store as installations
from app.outbox.events import NewEvent, enqueue
from app.outbox.states import EventStatus
from app.tenants import store as tenants
from tests.rows import pasted_installation


async def tenant_with_services(
    db: Database, *names: str, tenant_id: UUID | None = None
) -> tuple[UUID, list[UUID]]:
    """Services pasted by hand, for a new tenant or the one given."""
    if tenant_id is None:
        tenant = await tenants.insert_tenant(db, name="Analytics", external_id=None)
        assert tenant is not None
        tenant_id = tenant.id
    installation_id = await pasted_installation(db, tenant_id)
    ids = []
    for name in names:
        svc = await installations.insert_manual_service(
            db,
            tenant_id=tenant_id,
            installation_id=installation_id,
            name=name,
            kind="manual",
            api_version="v2",
            routing_key_enc="not read here",
            routing_key_hash=f"hash-{name}",
        )
        assert svc is not None
        ids.append(svc.id)
    return tenant_id, ids


@dataclass
class History:
    db: Database
    tenant_id: UUID

    async def alert(
        self,
        dedup_key: str,
        services: list[UUID],
        *,
        opened: datetime,
        acknowledged: datetime | None = None,
        resolved: datetime | None = None,
        severity: str = "critical",
    ) -> UUID:
        """An alert life opened, then acknowledged and resolved, at the given times."""
        alert_id = uuid4()
        steps = [
            (
                self.tenant_id,
                Step("open", alert_id, dedup_key, tuple(services), f"{dedup_key} down", severity),
            )
        ]
        if acknowledged is not None:
            steps.append((self.tenant_id, Step("acknowledge", alert_id, dedup_key)))
        if resolved is not None:
            steps.append((self.tenant_id, Step("resolve", alert_id, dedup_key)))
        actual = await apply_steps(self.db, steps)
        alert_id = actual[alert_id]
        await self.db.execute(
            """
            UPDATE alerts SET opened_at = CAST(:opened AS timestamptz),
                acknowledged_at = CAST(:acknowledged AS timestamptz),
                resolved_at = CAST(:resolved AS timestamptz),
                last_event_at = GREATEST(CAST(:opened AS timestamptz),
                    CAST(:acknowledged AS timestamptz), CAST(:resolved AS timestamptz))
            WHERE id = :id
            """,
            {
                "id": alert_id,
                "opened": opened,
                "acknowledged": acknowledged,
                "resolved": resolved,
            },
        )
        return alert_id

    async def event(
        self,
        service_id: UUID | None,
        *,
        accepted: datetime,
        kind: str = "trigger",
        status: EventStatus = EventStatus.DELIVERED,
        paged_after: timedelta | None = None,
        source: str = "db1",
        alert_id: UUID | None = None,
    ) -> UUID:
        """An event accepted at `accepted` that ended in `status`; a delivered one got
        PagerDuty's 2xx `paged_after` later (its one delivered attempt)."""
        skipped = status == EventStatus.SKIPPED
        [(event_id, _)] = await enqueue(
            self.db,
            [
                NewEvent(
                    tenant_id=self.tenant_id,
                    service_id=None if skipped else service_id,
                    routing_key_hash=None if skipped else "key-hash",
                    dedup_key="k",
                    kind=kind,
                    api="v2",
                    body={"event_action": kind, "payload": {"source": source}},
                    notes=(),
                    source="native",
                    status=EventStatus.SKIPPED if skipped else EventStatus.QUEUED,
                    alert_id=alert_id,
                )
            ],
        )
        finished = accepted + (paged_after or timedelta(seconds=1))
        await self.db.execute(
            """
            UPDATE events SET status = :status, created_at = :accepted, finished_at = :finished
            WHERE id = :id
            """,
            {"status": str(status), "accepted": accepted, "finished": finished, "id": event_id},
        )
        if status == EventStatus.DELIVERED:
            await self.db.execute(
                """
                INSERT INTO delivery_attempts (event_id, routing_key_hash, started_at,
                    finished_at, outcome, http_status)
                VALUES (:id, 'key-hash', CAST(:finished AS timestamptz) - interval '1 ms',
                    CAST(:finished AS timestamptz), 'delivered', 202)
                """,
                {"id": event_id, "finished": finished},
            )
        return event_id
