"""From parsed alerts to committed events: route each alert to its services, map it to the
Events API, and write the whole lot to the outbox in one transaction. Nothing is sent here;
a 202 means every event is committed. One alert that cannot be routed refuses the batch.

Where an event goes, in order:
1. the service the sender names (`service`);
2. for an alert pdconnect knows (its life, per tenant and dedup key), the services its trigger
   went to: an acknowledge, resolve or repeated trigger follows its alert whatever the rules
   say now (they may have changed, and a resolve rarely carries the labels they route on);
3. the tenant's routing rules, for an alert pdconnect has never seen (or a trigger after its
   alert was resolved, which opens a new one in PagerDuty).
An acknowledge or resolve that none of these places is accepted and recorded as skipped:
PagerDuty answers 202 to one for an alert it does not have, and does nothing with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from uuid import UUID

from databases import Database

from app.alerts import store as alerts_store
from app.alerts.life import Lives, live_services
from app.errors import InputError
from app.ingest import store
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.lanes import off_the_loop
from app.ingest.mapping import OutboundEvent, change_to_outbound, to_outbound, wire_dedup_key
from app.ingest.routing import (
    Condition,
    MatchBudget,
    NoRoute,
    Rule,
    Target,
    resolve_targets,
)
from app.ingest.severity import SeverityMap, parse_severity_map
from app.ingest.store import RoutableService
from app.observability.metrics import INGESTED
from app.outbox.events import NewEvent, enqueue
from app.outbox.states import EventStatus, ServiceHealth

Item = Alert | ChangeEvent
# Takes the number of events a request would write; raises to refuse the request whole.
Budget = Callable[[int], Awaitable[None]]

NOTHING_TO_RESOLVE = (
    "nothing to resolve: pdconnect has sent no alert with this dedup key, and no routing rule "
    "matches this event"
)
# Kinds of PagerDuty target that are event rulesets: their keys take no change events.
RULESET_KINDS = ("global_rule_set", "team_rule_set", "global_event_rules", "team_rules", "ruleset")


@dataclass(frozen=True)
class Accepted:
    id: UUID
    dedup_key: str | None
    # None when the event was recorded with nowhere to go (status SKIPPED).
    service: RoutableService | None
    status: EventStatus


@dataclass(frozen=True)
class _Planned:
    event: NewEvent
    service: RoutableService | None


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


def takes_change_events(service: RoutableService) -> bool:
    """PagerDuty refuses change events only on event ruleset keys (they begin with `R`) and
    has no change events in its v1 API."""
    return service.api_version == "v2" and service.kind not in RULESET_KINDS


class _Router:
    """Routes one request's items, keeping the lives of its alerts as they change."""

    def __init__(
        self,
        tenant_id: UUID,
        source: str,
        services: Sequence[RoutableService],
        rules: Sequence[Rule],
        severities: SeverityMap,
        lives: Lives,
    ) -> None:
        self.tenant_id = tenant_id
        self.source = source
        self.by_id = {s.id: s for s in services}
        self.targets = [
            Target(id=s.id, pd_service_id=s.pd_service_id, name=s.name) for s in services
        ]
        self.rules = rules
        self.severities = severities
        self.lives = lives
        self.budget: MatchBudget | None = None

    def plan(self, items: Sequence[Item]) -> list[_Planned]:
        """Every item's events. Runs in a routing thread (`off_the_loop`): matching may take
        up to its budget of CPU time, which the event loop must not spend."""
        self.budget = MatchBudget()
        planned: list[_Planned] = []
        for index, item in enumerate(items):
            where = f"alerts[{index}]" if len(items) > 1 else ""
            planned.extend(self.route(item, where))
        return planned

    def route(self, item: Item, where: str) -> list[_Planned]:
        if isinstance(item, ChangeEvent):
            return [self._change(item, service, where) for service in self._by_rules(item, where)]
        dedup_key = item.dedup_key
        if dedup_key is None:
            # One key for every service the alert goes to, so later updates find them all.
            dedup_key = uuid.uuid4().hex
            item = replace(item, dedup_key=dedup_key)
        key = wire_dedup_key(dedup_key)
        life = self.lives.current(key)
        followed = live_services(life, self.by_id) if life is not None else ()
        # A trigger after the resolve opens a new alert: today's rules route that one.
        follows = life is not None and (life.is_open or item.status != "firing")
        if item.service is None and followed and follows:
            chosen = [self.by_id[s] for s in followed]
        else:
            try:
                chosen = self._by_rules(item, where)
            except NoRoute:
                if item.status == "firing" or item.service is not None:
                    raise
                return [self._skipped(item)]
        outbound = [self._outbound(item, service) for service in chosen]
        alert_id: UUID | None
        if item.status == "firing":
            payload = outbound[0].body.get("payload")
            alert_id = self.lives.trigger(
                key,
                [s.id for s in chosen],
                summary=item.summary,
                severity=payload.get("severity") if isinstance(payload, dict) else None,
            )
        else:
            alert_id = self.lives.update(key, item.status)
        return [
            _Planned(self._event(out, service, alert_id), service)
            for out, service in zip(outbound, chosen, strict=True)
        ]

    def _by_rules(self, item: Item, where: str) -> list[RoutableService]:
        try:
            chosen = resolve_targets(item, self.rules, self.targets, self.budget)
        except NoRoute as exc:
            field = f"{where}.{exc.field}" if where and exc.field else where or exc.field
            raise NoRoute(field.rstrip("."), exc.message) from exc
        return [self.by_id[target.id] for target in chosen]

    def _outbound(self, item: Alert, service: RoutableService) -> OutboundEvent:
        return to_outbound(
            item,
            api="v1" if service.api_version == "v1" else "v2",
            severity_map=self.severities,
            new_dedup_key=lambda: uuid.uuid4().hex,
        )

    def _change(self, item: ChangeEvent, service: RoutableService, where: str) -> _Planned:
        if not takes_change_events(service):
            why = "a v1 service key" if service.api_version == "v1" else "an event ruleset key"
            raise InputError(
                f"{where}.service" if where else "service",
                f"{service.name} is {why}, and PagerDuty takes change events only on "
                "Events API v2 integration keys",
            )
        return _Planned(self._event(change_to_outbound(item), service, None), service)

    def _event(
        self, out: OutboundEvent, service: RoutableService, alert_id: UUID | None
    ) -> NewEvent:
        return NewEvent(
            tenant_id=self.tenant_id,
            service_id=service.id,
            routing_key_hash=service.routing_key_hash,
            dedup_key=out.dedup_key,
            kind=out.kind,
            api=out.api,
            body=out.body,
            notes=out.notes,
            source=self.source,
            status=(
                EventStatus.QUEUED if service.health == ServiceHealth.HEALTHY else EventStatus.HELD
            ),
            alert_id=alert_id,
        )

    def _skipped(self, item: Alert) -> _Planned:
        out = to_outbound(
            item, api="v2", severity_map=self.severities, new_dedup_key=lambda: uuid.uuid4().hex
        )
        event = NewEvent(
            tenant_id=self.tenant_id,
            service_id=None,
            routing_key_hash=None,
            dedup_key=out.dedup_key,
            kind=out.kind,
            api=out.api,
            body=out.body,
            notes=out.notes,
            source=self.source,
            status=EventStatus.SKIPPED,
            reason=NOTHING_TO_RESOLVE,
        )
        return _Planned(event, None)


def _dedup_keys(items: Sequence[Item]) -> list[str]:
    return [
        wire_dedup_key(item.dedup_key)
        for item in items
        if isinstance(item, Alert) and item.dedup_key is not None
    ]


def _final(event: NewEvent, actual: dict[UUID, UUID], due_in: timedelta | None) -> NewEvent:
    alert_id = event.alert_id
    if alert_id is not None:
        alert_id = actual.get(alert_id, alert_id)
    return replace(event, alert_id=alert_id, due_in=due_in)


async def accept(
    db: Database,
    tenant_id: UUID,
    items: Sequence[Item],
    *,
    source: str,
    due_in: timedelta | None = None,
    budget: Budget | None = None,
) -> list[Accepted]:
    """Route, map and commit `items` (all or none). `due_in` holds the events back that long
    before their first send (a test event's resolve). `budget` is paid the number of events
    (one per alert and service) before they are written, and raises to refuse them."""
    services = await store.routable_services(db, tenant_id)
    rules = _rules(await store.list_rules(db, tenant_id))
    severities = parse_severity_map(await store.severity_map(db, tenant_id))
    lives = Lives(await alerts_store.latest_lives(db, tenant_id, _dedup_keys(items)))
    router = _Router(tenant_id, source, services, rules, severities, lives)
    planned = await off_the_loop(lambda: router.plan(items), lane=tenant_id)
    if budget is not None:
        # Paid for after fan-out and before anything is written: a batch the budget refuses
        # stores nothing, not even its alerts' lives.
        await budget(len(planned))
    async with db.transaction():
        actual = await alerts_store.apply_steps(db, tenant_id, lives.steps)
        events = [_final(p.event, actual, due_in) for p in planned]
        created = await enqueue(db, events)
    for event in events:
        INGESTED.labels(source, event.kind).inc()
    return [
        Accepted(id=event_id, dedup_key=event.dedup_key, service=p.service, status=status)
        for (event_id, status), event, p in zip(created, events, planned, strict=True)
    ]
