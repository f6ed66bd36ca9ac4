"""Recording callbacks: what other domains call, inside their own transactions, so that a
change and its callback commit together (or neither does).

A callback is recorded only when the tenant has a receiver (its own, or the global
PDCONNECT_CALLBACK_URL); its body is fixed here, the exact bytes every attempt signs and sends.

    {"type": "incident.acknowledged", "timestamp": "…", "data": {…}}

Its order key puts it in line: the callbacks of one alert (its dedup key) go out one at a time
in the order they were recorded, and so do those of one connection
(`connection:<installation id>`); different keys do not wait for each other.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from databases import Database

from app.alerts.incidents import IncidentChange
from app.callbacks import pagerduty, store
from app.callbacks.types import (
    CONNECTION_TYPES,
    DELIVERY_TYPES,
    INCIDENT_TYPES,
    SLA_BREACHED,
    TEST,
)
from app.outbox.claims import Claimed

ConnectionType = Literal[
    "connection.needs_reconnect",
    "connection.broken",
    "connection.restored",
    "connection.disconnected",
]


def body_of(type: str, data: dict[str, Any], at: datetime | None = None) -> str:
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    document = {"type": type, "timestamp": moment.isoformat(), "data": data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


async def emit(
    db: Database,
    *,
    tenant_id: UUID,
    type: str,
    order_key: str,
    data: dict[str, Any],
    at: datetime | None = None,
    source_key: str | None = None,
) -> UUID | None:
    """Record one callback in the caller's transaction; its id, or None when the tenant has no
    receiver (or `source_key` made one already)."""
    callback_id = uuid.uuid4()
    recorded = await store.insert_callback(
        db,
        callback_id=callback_id,
        tenant_id=tenant_id,
        type=type,
        order_key=order_key,
        body=body_of(type, data, at),
        source_key=source_key,
    )
    return callback_id if recorded else None


async def sla_breached(
    db: Database,
    *,
    tenant_id: UUID,
    breach_id: int,
    dedup_key: str,
    target: str,
    severity: str,
    target_seconds: int,
    took_seconds: float | None,
    opened_at: datetime,
) -> None:
    """An alert went past its tenant's target to acknowledge or resolve (the analytics fold
    finds it). Once per breach, however many processes report it: its id is the source key."""
    if not await store.enabled(db, tenant_id):
        return
    data = {
        "tenant": await store.tenant_ref(db, tenant_id),
        "alert": await store.alert_ref(db, tenant_id, dedup_key),
        "target": target,
        "severity": severity,
        "target_seconds": target_seconds,
        # None while the alert is still not acknowledged (or resolved).
        "took_seconds": took_seconds,
        "opened_at": opened_at.isoformat(),
    }
    await emit(
        db,
        tenant_id=tenant_id,
        type=SLA_BREACHED,
        order_key=dedup_key,
        data=data,
        source_key=f"breach:{breach_id}",
    )


async def emit_test_callback(db: Database, tenant_id: UUID) -> UUID | None:
    """`callback.test`, through the same machinery as every other callback."""
    data = {"tenant": await store.tenant_ref(db, tenant_id), "message": "a test callback"}
    return await emit(db, tenant_id=tenant_id, type=TEST, order_key="test", data=data)


class Subscription(Protocol):
    """A webhook subscription: whose connection the webhook came through."""

    @property
    def tenant_id(self) -> UUID: ...

    @property
    def installation_id(self) -> UUID: ...


async def from_pagerduty_webhook(db: Database, subscription: Subscription, raw: bytes) -> None:
    """A verified PagerDuty webhook of the tenant's connection: an incident change of an alert
    pdconnect sent becomes `incident.*`, a deleted service `connection.broken`. Anything else,
    or an incident pdconnect did not open, makes none. PagerDuty's event id is the source key,
    so a webhook delivered twice makes one callback."""
    tenant_id, installation_id = subscription.tenant_id, subscription.installation_id
    if not await store.enabled(db, tenant_id):
        return
    event = pagerduty.read(raw)
    if event is None:
        return
    if event.event_type == "service.deleted" and event.resource_id is not None:
        service = await store.service_ref(
            db, installation_id=installation_id, pd_service_id=event.resource_id
        )
        if service is not None:
            reason = "the service was deleted in PagerDuty"
            await service_changed(db, "connection.broken", UUID(service["id"]), reason)
        return
    if event.event_type not in INCIDENT_TYPES or event.incident_id is None:
        return
    service_id, dedup_key = await _incident_place(db, tenant_id, installation_id, event)
    if service_id is None or dedup_key is None:
        return
    alert = await store.alert_ref(db, tenant_id, dedup_key)
    if alert is None:
        return  # not an alert pdconnect sent: the vendor's product has nothing to match it
    data = {
        "tenant": await store.tenant_ref(db, tenant_id),
        "alert": alert,
        "service": await store.service_ref(db, service_id=service_id),
        "incident": event.incident_json(),
        "agent": event.agent,
        "occurred_at": None if event.occurred_at is None else event.occurred_at.isoformat(),
        "pagerduty_event_id": event.event_id,
    }
    if event.note is not None:
        data["note"] = event.note
    await emit(
        db,
        tenant_id=tenant_id,
        type=event.event_type,
        order_key=dedup_key,
        data=data,
        at=event.occurred_at,
        source_key=None if event.event_id is None else f"pagerduty:{event.event_id}",
    )


# What a state read through PagerDuty's REST API (reconciliation) is called as a callback.
RECONCILED = {
    "triggered": "incident.triggered",
    "acknowledged": "incident.acknowledged",
    "resolved": "incident.resolved",
}


async def from_reconciled(db: Database, change: IncidentChange) -> None:
    """An incident state that reconciliation read from PagerDuty's REST API and recorded
    (no webhook told it: a lost delivery, a disabled subscription). The vendor's product hears
    of it as it would have from the webhook, marked `reconciled`; the REST API gives no
    assignees or urgency here, so those are left out rather than guessed."""
    tenant_id = change.tenant_id
    if change.status not in RECONCILED or not await store.enabled(db, tenant_id):
        return
    alert = await store.alert_ref(db, tenant_id, change.dedup_key)
    if alert is None:
        return
    data = {
        "tenant": await store.tenant_ref(db, tenant_id),
        "alert": alert,
        "service": await store.service_ref(db, service_id=change.service_id),
        "incident": {
            "id": change.incident_id,
            "number": change.incident_number,
            "url": change.html_url,
            "status": change.status,
            "title": change.title,
        },
        "agent": None if change.changed_by is None else {"name": change.changed_by},
        "occurred_at": change.changed_at.isoformat(),
        "reconciled": True,
    }
    await emit(
        db,
        tenant_id=tenant_id,
        type=RECONCILED[change.status],
        order_key=change.dedup_key,
        data=data,
        at=change.changed_at,
        # One callback per incident and state, however many passes read it.
        source_key=f"reconciled:{change.incident_id}:{change.status}",
    )


async def _incident_place(
    db: Database, tenant_id: UUID, installation_id: UUID, event: pagerduty.IncidentEvent
) -> tuple[UUID | None, str | None]:
    """The service (ours) and dedup key of the event's incident."""
    if event.service_id is not None and event.incident_key is not None:
        service = await store.service_ref(
            db, installation_id=installation_id, pd_service_id=event.service_id
        )
        return (None if service is None else UUID(service["id"])), event.incident_key
    assert event.incident_id is not None
    # A note's webhook names only the incident: where its state was recorded says the rest.
    found = await store.incident_of(db, tenant_id, event.incident_id)
    return (None, None) if found is None else found


async def delivery_settled(
    db: Database,
    type: Literal["delivery.failed", "delivery.held"],
    event: Claimed,
    error: str,
) -> None:
    """An event to PagerDuty failed for good or is held: in line with its alert's callbacks."""
    assert type in DELIVERY_TYPES
    tenant_id, dedup_key = event.tenant_id, event.dedup_key
    if not await store.enabled(db, tenant_id):
        return
    alert = None if dedup_key is None else await store.alert_ref(db, tenant_id, dedup_key)
    service_id = event.service_id
    service = None if service_id is None else await store.service_ref(db, service_id=service_id)
    data = {
        "tenant": await store.tenant_ref(db, tenant_id),
        "event": {"id": str(event.id), "dedup_key": dedup_key, "kind": event.kind, "error": error},
        "alert": alert,
        "service": service,
    }
    order_key = dedup_key if dedup_key is not None else f"event:{event.id}"
    await emit(db, tenant_id=tenant_id, type=type, order_key=order_key, data=data)


async def service_changed(
    db: Database, type: ConnectionType, service_id: UUID, reason: str | None = None
) -> None:
    """A connected service broke or was restored: a connection callback about it."""
    service = await store.service_ref(db, service_id=service_id)
    if service is not None:
        installation_id = UUID(service["installation_id"])
        await connection_changed(db, type, installation_id, reason, service_id=service_id)


async def connection_changed(
    db: Database,
    type: ConnectionType,
    installation_id: UUID,
    reason: str | None = None,
    *,
    service_id: UUID | None = None,
) -> None:
    """A connection (or one of its services) changed state. Callbacks say changes: the same
    state twice in a row is sent once, and `restored` only follows a needs_reconnect or a
    broken one."""
    assert type in CONNECTION_TYPES
    found = await store.installation_ref(db, installation_id)
    if found is None:
        return
    tenant_id, installation = found
    if not await store.enabled(db, tenant_id):
        return
    order_key = f"connection:{installation_id}"
    last = await store.last_type_about(db, tenant_id, order_key, service_id)
    if last == type:
        return
    if type == "connection.restored" and last not in (
        "connection.needs_reconnect",
        "connection.broken",
    ):
        return
    service = None if service_id is None else await store.service_ref(db, service_id=service_id)
    data = {
        "tenant": await store.tenant_ref(db, tenant_id),
        "installation": installation,
        "service": service,
        "reason": reason,
    }
    await emit(db, tenant_id=tenant_id, type=type, order_key=order_key, data=data)
