"""What routing needs of a tenant: its services, its rules (parsed, with their templates), its
severity map, its maintenance windows and what an alert matching no rule gets.

One `RoutingView` is taken per request, before the request's alerts are matched: routing
itself then reads nothing. With the process's cache (app/db/changes.py) it comes from memory,
read from PostgreSQL once per tenant and again only after a change notice for that tenant
(a service added, removed, renamed or its health changed, a rule, the severity map, a window,
the unmatched choice). Whether a window is on is worked out per request from the clock. Its
services' health is only a hint: whether an event is queued or held is decided from the
service's row in the transaction that writes it (app/outbox/events.py), so a view a moment old
never sends to a service already held.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from databases import Database

from app.db.changes import ChangeCache, TenantTable
from app.errors import InputError
from app.ingest import store
from app.ingest.routing import Condition, MatchBudget, Rule, Target
from app.ingest.rule_index import RuleIndex, RuleSlot
from app.ingest.severity import SeverityMap, parse_severity_map
from app.ingest.store import RoutableService
from app.ingest.templates import Shaping, parse_shaping
from app.ingest.windows import Window

# The cache's table of views. A tenant's view is at most 100 services and 100 rules
# (PDCONNECT_MAX_SERVICES_PER_TENANT, _RULES_): a few hundred KiB at the very worst, a few KiB
# as tenants have them. 1 000 tenants is every tenant of most deployments, and bounds the
# table's worst case to a few hundred MiB; a tenant past it is read again on its next request.
VIEWS_TABLE = "routing views"
VIEWS_MAX_TENANTS = 1_000


@dataclass(frozen=True)
class RoutingView:
    services: tuple[RoutableService, ...]
    rules: tuple[Rule, ...]
    severities: SeverityMap
    windows: tuple[Window, ...] = ()
    # "refuse" (422) or "suppress" (accepted, recorded, not sent).
    unmatched: str = "refuse"
    # The rules compiled for matching, built on first use and kept as long as the view.
    _compiled: RuleSlot = field(default_factory=RuleSlot, compare=False, repr=False)

    # What every request of the tenant would otherwise build from `services` again: kept with
    # the view, which is read once per change.
    @functools.cached_property
    def services_by_id(self) -> Mapping[UUID, RoutableService]:
        return {s.id: s for s in self.services}

    @functools.cached_property
    def targets(self) -> tuple[Target, ...]:
        return tuple(
            Target(id=s.id, pd_service_id=s.pd_service_id, name=s.name) for s in self.services
        )

    def rule_index(self, budget: MatchBudget | None = None) -> RuleIndex:
        """The view's rules compiled (`NotInline` on the event loop if building it is not
        cheap: the routing thread builds it)."""
        return self._compiled.get(self.rules, budget)


# A rule's conditions all have to hold, so the order they are tried in changes only the cost:
# the cheap ones (a lookup, a comparison) first, so that a rule that fails on one never searches.
_COST = {"exists": 0, "equals": 1, "regex": 2}


def _rules(stored: Sequence[store.StoredRule]) -> tuple[Rule, ...]:
    return tuple(
        Rule(
            id=r.id,
            name=r.name,
            conditions=tuple(
                sorted(
                    (
                        Condition(field=c["field"], op=c["op"], value=c.get("value"))
                        for c in r.conditions
                    ),
                    key=lambda c: _COST.get(c.op, 3),
                )
            ),
            service_ids=r.service_ids,
            action="suppress" if r.action == "suppress" else "page",
            shaping=_shaping(r.templates),
        )
        for r in stored
    )


def _shaping(stored: dict[str, Any]) -> Shaping | None:
    try:
        return parse_shaping(stored)
    except InputError:
        # Saved templates were checked when saved; one this version cannot read shapes nothing
        # rather than failing every alert of the tenant.
        return None


def windows_of(stored: Sequence[store.StoredWindow]) -> tuple[Window, ...]:
    return tuple(
        Window(
            id=w.id,
            name=w.name,
            starts_at=w.starts_at,
            ends_at=w.ends_at,
            recurrence="weekly" if w.recurrence == "weekly" else "once",
            time_zone=w.time_zone,
            recurs_until=w.recurs_until,
            service_ids=w.service_ids,
            conditions=tuple(
                Condition(field=c["field"], op=c["op"], value=c.get("value")) for c in w.conditions
            ),
            on_end="send" if w.on_end == "send" else "drop",
            ended_early_at=w.ended_early_at,
        )
        for w in stored
    )


async def load_view(db: Database, tenant_id: UUID) -> RoutingView:
    """The tenant's view as PostgreSQL has it now."""
    return RoutingView(
        services=tuple(await store.routable_services(db, tenant_id)),
        rules=_rules(await store.list_rules(db, tenant_id)),
        severities=parse_severity_map(await store.severity_map(db, tenant_id)),
        windows=windows_of(await store.list_windows(db, tenant_id)),
        unmatched=await store.unmatched_policy(db, tenant_id),
    )


async def cached_view(cache: ChangeCache | None, db: Database, tenant_id: UUID) -> RoutingView:
    """The tenant's view: from the process's cache when it has a current one, else read."""
    if cache is None:
        return await load_view(db, tenant_id)
    table: TenantTable[UUID, RoutingView] = cache.table(VIEWS_TABLE, VIEWS_MAX_TENANTS)
    found = await cache.read(
        table, tenant_id, lambda: load_view(db, tenant_id), lambda _: tenant_id
    )
    assert found is not None
    return found
