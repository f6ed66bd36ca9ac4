"""From parsed alerts to committed events: route each alert to its services, map it to the
Events API, and write the whole lot to the outbox in one transaction. Nothing is sent here;
a 202 means every event is committed. One alert that cannot be routed refuses the batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from databases import Database

from app.dispatch.store import NewEvent, enqueue
from app.errors import InputError
from app.ingest import store
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.mapping import change_to_outbound, to_outbound
from app.ingest.routing import Condition, NoRoute, Rule, Target, resolve_targets
from app.ingest.severity import parse_severity_map
from app.ingest.store import RoutableService
from app.observability.metrics import INGESTED

Item = Alert | ChangeEvent


@dataclass(frozen=True)
class Accepted:
    id: UUID
    dedup_key: str | None
    service: RoutableService
    status: str


def _rules(stored: Sequence[store.StoredRule]) -> list[Rule]:
    return [
        Rule(
            id=r.id,
            name=r.name,
            conditions=tuple(
                Condition(field=c["field"], op=c["op"], value=c.get("value")) for c in r.conditions
            ),
            service_ids=r.service_ids,
        )
        for r in stored
    ]


def _where(index: int, count: int, field: str) -> str:
    return f"alerts[{index}].{field}" if count > 1 else field


async def accept(
    db: Database, tenant_id: UUID, items: Sequence[Item], *, source: str
) -> list[Accepted]:
    services = await store.routable_services(db, tenant_id)
    by_id = {s.id: s for s in services}
    targets = [Target(id=s.id, pd_service_id=s.pd_service_id, name=s.name) for s in services]
    rules = _rules(await store.list_rules(db, tenant_id))
    severities = parse_severity_map(await store.severity_map(db, tenant_id))

    planned: list[tuple[NewEvent, RoutableService]] = []
    for index, item in enumerate(items):
        try:
            chosen = resolve_targets(item, rules, targets)
        except NoRoute as exc:
            raise NoRoute(_where(index, len(items), exc.field).rstrip("."), exc.message) from exc
        if isinstance(item, Alert) and item.dedup_key is None:
            # One key for every service the alert goes to, so later updates find them all.
            item = replace(item, dedup_key=uuid.uuid4().hex)
        for target in chosen:
            service = by_id[target.id]
            if isinstance(item, ChangeEvent):
                if service.api_version != "v2" or service.kind != "service":
                    raise InputError(
                        _where(index, len(items), "service"),
                        f"change events need an Events API v2 service; {service.name} is not one",
                    )
                outbound = change_to_outbound(item)
            else:
                outbound = to_outbound(
                    item,
                    api="v1" if service.api_version == "v1" else "v2",
                    severity_map=severities,
                    new_dedup_key=lambda: uuid.uuid4().hex,
                )
            planned.append(
                (
                    NewEvent(
                        tenant_id=tenant_id,
                        service_id=service.id,
                        routing_key_hash=service.routing_key_hash,
                        dedup_key=outbound.dedup_key,
                        kind=outbound.kind,
                        api=outbound.api,
                        body=outbound.body,
                        notes=outbound.notes,
                        source=source,
                        held=service.health != "healthy",
                    ),
                    service,
                )
            )
    async with db.transaction():
        created = await enqueue(db, [event for event, _ in planned])
    for event, _ in planned:
        INGESTED.labels(source, event.kind).inc()
    return [
        Accepted(id=event_id, dedup_key=event.dedup_key, service=service, status=status)
        for (event_id, status), (event, service) in zip(created, planned, strict=True)
    ]
