"""What routing needs of a tenant: its services, its rules (parsed) and its severity map.

One `RoutingView` is read (or taken from a cache) per request, before the request's alerts are
matched: routing itself then reads nothing. Its services' health is only a hint: whether an
event is queued or held is decided from the service's row in the transaction that writes it
(app/outbox/events.py), so a view a moment old never sends to a service already held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from databases import Database

from app.ingest import store
from app.ingest.routing import Condition, Rule
from app.ingest.severity import SeverityMap, parse_severity_map
from app.ingest.store import RoutableService


@dataclass(frozen=True)
class RoutingView:
    services: tuple[RoutableService, ...]
    rules: tuple[Rule, ...]
    severities: SeverityMap


def _rules(stored: Sequence[store.StoredRule]) -> tuple[Rule, ...]:
    return tuple(
        Rule(
            id=r.id,
            name=r.name,
            conditions=tuple(
                Condition(field=c["field"], op=c["op"], value=c.get("value")) for c in r.conditions
            ),
            service_ids=r.service_ids,
        )
        for r in stored
    )


async def load_view(db: Database, tenant_id: UUID) -> RoutingView:
    """The tenant's view as PostgreSQL has it now."""
    return RoutingView(
        services=tuple(await store.routable_services(db, tenant_id)),
        rules=_rules(await store.list_rules(db, tenant_id)),
        severities=parse_severity_map(await store.severity_map(db, tenant_id)),
    )
