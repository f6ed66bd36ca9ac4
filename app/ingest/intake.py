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

What is accepted but deliberately not sent is recorded as `suppressed`, its reason naming why:
- an alert whose first matching rule says "don't page", or that matches no rule when the
  tenant accepts such alerts (its life opens with no services: its acknowledge and resolve are
  suppressed too, and a trigger once it matches a paging rule pages);
- an event routed by the rules (or to a named service) while a maintenance window covers that
  service and its conditions hold: recorded for that service and remembered with the window
  (`window_suppressions`), so that when the window ends its still-firing alerts are sent or
  dropped as the window says (app/ingest/window_ends.py). An alert that paged before the
  window follows its life as always: its acknowledge and resolve go through.
Rule templates (app/ingest/templates.py) shape the alert, its dedup key included, when it is
matched, so the life, the body and every later event use the shaped alert.

A request's work is split in two, so that neither its matching nor its write holds others up:
1. In the request, off the event loop in its tenant's lane (app/ingest/lanes.py), its alerts are
   matched against the tenant's rules (`RoutingView`): the CPU-heavy part, bounded per request.
2. In a group commit (app/db/group.py) with whatever other requests are writing: the lives of
   all their alerts are read in one statement, each request chooses between its alerts' lives
   and its rule matches (cheap), pays its rate budget, and all their steps and events are
   written in one statement (one per kind of step when an alert takes two in the batch) and one
   COMMIT. Requests are taken in order, so a later request of the batch sees the lives an
   earlier one changed; one refused (no route, rate limited) writes nothing and costs the
   others nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
from databases import Database

from app.alerts import store as alerts_store
from app.alerts.life import Life, Lives, Step, live_services
from app.deps import Deps
from app.errors import InputError
from app.ids import new_hex
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.lanes import off_the_loop
from app.ingest.mapping import OutboundEvent, change_to_outbound, to_outbound, wire_dedup_key
from app.ingest.routing import (
    MatchBudget,
    NoRoute,
    NotInline,
    Rule,
    all_hold,
    first_match,
)
from app.ingest.store import (
    SUPPRESSIONS_IN_ONE,
    RoutableService,
    record_suppressions,
    suppression_values,
)
from app.ingest.templates import shape
from app.ingest.view import RoutingView, cached_view, load_view
from app.ingest.windows import Window
from app.observability.metrics import INGEST_BATCH_REQUESTS, INGEST_COMMIT_SECONDS, INGESTED
from app.outbox.events import NewEvent, Part, ServicesChanged, enqueue, enqueue_together
from app.outbox.states import EventStatus
from app.tenants.ratelimit import IngestRateLimited

Item = Alert | ChangeEvent
# Takes the number of events a request would write; raises to refuse the request whole.
Budget = Callable[[int], Awaitable[None]]

NOTHING_TO_RESOLVE = (
    "nothing to resolve: pdconnect has sent no alert with this dedup key, and no routing rule "
    "matches this event"
)
# Batches written at once: while one waits for its COMMIT, the next is written on another
# connection (app/db/group.py); requests that share an alert are never in two of them.
DRAINS = 2
# Kinds of PagerDuty target that are event rulesets: their keys take no change events.
RULESET_KINDS = ("global_rule_set", "team_rule_set", "global_event_rules", "team_rules", "ruleset")
UNMATCHED_SUPPRESSED = "not paged: no routing rule matches, and unmatched alerts are accepted"
SUPPRESSED_ALERT = "not paged: its alert was suppressed and has paged nobody"


def rule_suppressed(name: str) -> str:
    return f"not paged: routing rule \u201c{name}\u201d accepts without paging"


def window_suppressed(window: Window) -> str:
    return f"not paged: maintenance window \u201c{window.name}\u201d ({window.id})"


@dataclass(frozen=True)
class Accepted:
    id: UUID
    dedup_key: str | None
    # None when the event was recorded with nowhere to go (status SKIPPED).
    service: RoutableService | None
    status: EventStatus
    kind: str


@dataclass(frozen=True)
class _Planned:
    event: NewEvent
    service: RoutableService | None
    # The window that suppressed it and the end of that window's occurrence.
    window: tuple[UUID, datetime] | None = None


@dataclass(frozen=True)
class _Quiet:
    """A window that covers one of an item's services now, and when its occurrence ends."""

    window: Window
    until: datetime


@dataclass(frozen=True)
class _Matched:
    """One item after matching: an alert (with the dedup key it will have) and the services
    the rules give it, or why none; a change event with its services (it has no life)."""

    item: Item
    where: str
    by_rules: tuple[RoutableService, ...] | NoRoute
    # Not sent before this much time has passed (a test event's resolve).
    due_in: timedelta | None = None
    # Why the rules page nobody (a "don't page" rule, the unmatched choice); by_rules is ().
    suppressed: str | None = None
    # Services a maintenance window covers now (if the event goes there by the rules).
    quiet: dict[UUID, _Quiet] | None = None
    # How `by_rules` was chosen, in words for the delivery history.
    routed_by: str | None = None


@dataclass(frozen=True)
class _Submission:
    tenant_id: UUID
    view: RoutingView
    matched: tuple[_Matched, ...]
    source: str
    budget: Budget | None


def takes_change_events(service: RoutableService) -> bool:
    """PagerDuty refuses change events only on event ruleset keys (they begin with `R`) and
    has no change events in its v1 API."""
    return service.api_version == "v2" and service.kind not in RULESET_KINDS


async def _matched(
    view: RoutingView, tenant_id: UUID, items: Sequence[Item], due_in: Sequence[timedelta | None]
) -> tuple[_Matched, ...]:
    """Every item's rule matches: on the event loop when that is cheap (most requests), else in
    a routing thread of the tenant's lane (`off_the_loop`), where matching may take up to its
    budget of CPU time, which the event loop must not spend."""
    try:
        return _match(view, items, due_in, MatchBudget.inline())
    except NotInline:
        # Made in the thread: the budget reads that thread's CPU clock.
        return await off_the_loop(
            lambda: _match(view, items, due_in, MatchBudget()), lane=tenant_id
        )


def _match(
    view: RoutingView,
    items: Sequence[Item],
    due_in: Sequence[timedelta | None],
    budget: MatchBudget,
    now: datetime | None = None,
) -> tuple[_Matched, ...]:
    rule_index = view.rule_index(budget)
    by_id = view.services_by_id
    targets = view.targets
    on: list[_Quiet] = []
    if view.windows:
        at = now or datetime.now(UTC)
        for window in view.windows:
            occurrence = window.occurrence_at(at)
            if occurrence is not None:
                on.append(_Quiet(window, occurrence[1]))
    matched: list[_Matched] = []
    for index, item in enumerate(items):
        where = f"alerts[{index}]" if len(items) > 1 else ""
        suppressed: str | None = None
        routed_by: str | None = None
        try:
            chosen, rule = first_match(item, view.rules, targets, budget, index=rule_index)
            by_rules: tuple[RoutableService, ...] | NoRoute = tuple(
                by_id[target.id] for target in chosen
            )
            routed_by = _routed_by(item, rule)
            if rule is not None and rule.action == "suppress":
                suppressed = rule_suppressed(rule.name)
            if rule is not None and rule.shaping is not None and isinstance(item, Alert):
                item = shape(item, rule.shaping)
        except NoRoute as exc:
            field = f"{where}.{exc.field}" if where and exc.field else where or exc.field
            by_rules = NoRoute(field.rstrip("."), exc.message)
            if isinstance(item, ChangeEvent):
                # A change event has no life to follow: no route is final now.
                raise by_rules from exc
            if view.unmatched == "suppress" and item.service is None and view.services:
                by_rules, suppressed = (), UNMATCHED_SUPPRESSED
        if isinstance(item, Alert) and item.dedup_key is None:
            # One key for every service the alert goes to, so later updates find them all.
            item = replace(item, dedup_key=new_hex())
        if isinstance(item, ChangeEvent):
            assert not isinstance(by_rules, NoRoute)
            for service in by_rules:
                _check_takes_change_events(service, where)
        quiet = _quiet(on, item, by_rules, budget) if on and isinstance(item, Alert) else None
        matched.append(
            _Matched(
                item,
                where,
                by_rules,
                due_in[index] if due_in else None,
                suppressed,
                quiet,
                routed_by,
            )
        )
    return tuple(matched)


# How an event found its service (events.routed_by), as the delivery history says it.
FOLLOWS_ITS_ALERT = "following its alert, where its trigger went"
NAMED_SERVICE = "the service the alert names"
ONLY_SERVICE = "the only connected service (no routing rules)"


def _routed_by(item: Item, rule: Rule | None) -> str:
    if rule is not None:
        return f"routing rule \u201c{rule.name}\u201d"
    return NAMED_SERVICE if item.service is not None else ONLY_SERVICE


def _quiet(
    on: Sequence[_Quiet],
    item: Alert,
    by_rules: tuple[RoutableService, ...] | NoRoute,
    budget: MatchBudget,
) -> dict[UUID, _Quiet] | None:
    """The item's services that a window on now covers (the first such window for each)."""
    if isinstance(by_rules, NoRoute) or not by_rules:
        return None
    out: dict[UUID, _Quiet] = {}
    held: dict[UUID, bool] = {}
    for service in by_rules:
        for quiet in on:
            if not quiet.window.covers(service.id):
                continue
            window_id = quiet.window.id
            if window_id not in held:
                held[window_id] = all_hold(quiet.window.conditions, item, budget)
            if held[window_id]:
                out[service.id] = quiet
                break
    return out or None


def _check_takes_change_events(service: RoutableService, where: str) -> None:
    if not takes_change_events(service):
        why = "a v1 service key" if service.api_version == "v1" else "an event ruleset key"
        raise InputError(
            f"{where}.service" if where else "service",
            f"{service.name} is {why}, and PagerDuty takes change events only on "
            "Events API v2 integration keys",
        )


class _Planner:
    """One request's events, from its matches and its alerts' lives (as the batch left them)."""

    def __init__(self, submission: _Submission, lives: Lives) -> None:
        self.submission = submission
        self.tenant_id = submission.tenant_id
        self.by_id = submission.view.services_by_id
        self.severities = submission.view.severities
        self.lives = lives

    def plan(self) -> list[_Planned]:
        planned: list[_Planned] = []
        for matched in self.submission.matched:
            routed = self._route(matched)
            if matched.due_in is None:
                # Nearly every event: copying two dataclasses to set what is already None cost
                # a few percent of a request.
                planned.extend(routed)
            else:
                planned.extend(
                    replace(p, event=replace(p.event, due_in=matched.due_in)) for p in routed
                )
        return planned

    def _route(self, matched: _Matched) -> list[_Planned]:
        item = matched.item
        if isinstance(item, ChangeEvent):
            assert not isinstance(matched.by_rules, NoRoute)
            return [
                _Planned(
                    self._event(change_to_outbound(item), service, None, matched.routed_by),
                    service,
                )
                for service in matched.by_rules
            ]
        assert item.dedup_key is not None
        key = wire_dedup_key(item.dedup_key)
        life = self.lives.current(key)
        followed = live_services(life, self.by_id) if life is not None else ()
        # A trigger after the resolve opens a new alert: today's rules route that one.
        follows = life is not None and (life.is_open or item.status != "firing")
        routed_by = matched.routed_by
        if item.service is None and followed and follows:
            chosen = [self.by_id[s] for s in followed]
            routed_by = FOLLOWS_ITS_ALERT
        elif (
            item.service is None
            and life is not None
            and follows
            and not life.service_ids
            and item.status != "firing"
        ):
            # An acknowledge or resolve of an alert that was suppressed and paged nobody.
            return [self._suppressed(item, self.lives.update(key, item.status), SUPPRESSED_ALERT)]
        elif isinstance(matched.by_rules, NoRoute):
            if item.status == "firing" or item.service is not None:
                raise matched.by_rules
            return [self._skipped(item)]
        elif matched.suppressed is not None:
            if item.status != "firing":
                if life is None:
                    return [self._skipped(item)]
                return [
                    self._suppressed(item, self.lives.update(key, item.status), matched.suppressed)
                ]
            out = self._outbound(item, None)
            opened = self._trigger(key, [], out)
            return [self._suppressed(item, opened, matched.suppressed, out)]
        else:
            chosen = list(matched.by_rules)
        quiet = matched.quiet if not (item.service is None and followed and follows) else None
        quiet = quiet or {}
        outbound = [self._outbound(item, service) for service in chosen]
        paged = [s for s in chosen if s.id not in quiet]
        alert_id: UUID | None
        if item.status == "firing":
            alert_id = self._trigger(key, [s.id for s in paged], outbound[0])
        else:
            alert_id = self.lives.update(key, item.status)
        planned = []
        for out, service in zip(outbound, chosen, strict=True):
            held = quiet.get(service.id)
            if held is None:
                planned.append(_Planned(self._event(out, service, alert_id, routed_by), service))
                continue
            event = replace(
                self._event(out, service, alert_id, routed_by),
                status=EventStatus.SUPPRESSED,
                reason=window_suppressed(held.window),
            )
            window = (held.window.id, held.until) if item.status == "firing" else None
            planned.append(_Planned(event, service, window))
        return planned

    def _trigger(self, key: str, service_ids: list[UUID], out: OutboundEvent) -> UUID:
        payload = out.body.get("payload")
        return self.lives.trigger(
            key,
            service_ids,
            summary=self._summary(out),
            severity=payload.get("severity") if isinstance(payload, dict) else None,
        )

    @staticmethod
    def _summary(out: OutboundEvent) -> str | None:
        payload = out.body.get("payload")
        if isinstance(payload, dict) and isinstance(payload.get("summary"), str):
            return str(payload["summary"])
        description = out.body.get("description")
        return description if isinstance(description, str) else None

    def _suppressed(
        self, item: Alert, alert_id: UUID | None, reason: str, out: OutboundEvent | None = None
    ) -> _Planned:
        out = out or self._outbound(item, None)
        return self._nowhere(out, EventStatus.SUPPRESSED, reason, alert_id)

    def _nowhere(
        self, out: OutboundEvent, status: EventStatus, reason: str, alert_id: UUID | None = None
    ) -> _Planned:
        """An event recorded with no service: suppressed, or skipped (nothing to send)."""
        event = NewEvent(
            tenant_id=self.tenant_id,
            service_id=None,
            routing_key_hash=None,
            dedup_key=out.dedup_key,
            kind=out.kind,
            api=out.api,
            body=out.body,
            notes=out.notes,
            source=self.submission.source,
            status=status,
            alert_id=alert_id,
            reason=reason,
        )
        return _Planned(event, None)

    def _outbound(self, item: Alert, service: RoutableService | None) -> OutboundEvent:
        return to_outbound(
            item,
            api="v1" if service is not None and service.api_version == "v1" else "v2",
            severity_map=self.severities,
            new_dedup_key=new_hex,
        )

    def _event(
        self,
        out: OutboundEvent,
        service: RoutableService,
        alert_id: UUID | None,
        routed_by: str | None = None,
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
            source=self.submission.source,
            # Queued or held as the service's row says when the event is written.
            status=EventStatus.QUEUED,
            alert_id=alert_id,
            routed_by=routed_by,
        )

    def _skipped(self, item: Alert) -> _Planned:
        out = to_outbound(
            item, api="v2", severity_map=self.severities, new_dedup_key=new_hex
        )
        return self._nowhere(out, EventStatus.SKIPPED, NOTHING_TO_RESOLVE)


# The foreign keys that refer to an alert's life. A request reads its alerts' lives without a
# lock; retention (app/outbox/retention.py) may delete a long-resolved one before the request's
# event refers to it, and the insert then fails on one of these.
LIFE_REFERENCES = frozenset({"events_alert_id_fkey", "window_suppressions_alert_id_fkey"})


class LivesChanged(Exception):
    """A life the batch read was deleted before its events were written: nothing was
    written, and the requests are to be planned again on the lives there are now."""


async def write_batch(
    db: Database, submissions: Sequence[_Submission]
) -> list[list[Accepted] | Exception]:
    """The group commit's work (inside its transaction): every request's events and steps,
    or the error that refuses that request alone."""
    keys = [key for s in submissions for key in _alerts_of(s)]
    known: dict[UUID, dict[str, Life]] = {}
    for (tenant_id, key), life in (await alerts_store.latest_lives(db, keys)).items():
        known.setdefault(tenant_id, {})[key] = life
    answers: list[list[_Planned] | Exception] = []
    steps: list[tuple[UUID, Step]] = []
    for submission in submissions:
        tenant_known = known.setdefault(submission.tenant_id, {})
        # A copy: a request refused halfway leaves the lives as the one before it left them.
        lives = Lives(dict(tenant_known))
        try:
            planned = _Planner(submission, lives).plan()
            if submission.budget is not None:
                # Paid for after fan-out and before anything is written: a request the budget
                # refuses stores nothing, not even its alerts' lives.
                await submission.budget(len(planned))
        except (InputError, IngestRateLimited) as exc:
            answers.append(exc)
            continue
        tenant_known.update(lives.known)
        steps.extend((submission.tenant_id, step) for step in lives.steps)
        answers.append(planned)
    try:
        return await _write(db, answers, steps)
    except asyncpg.exceptions.ForeignKeyViolationError as exc:
        if exc.constraint_name in LIFE_REFERENCES:
            raise LivesChanged() from exc
        raise


async def _write(
    db: Database, answers: list[list[_Planned] | Exception], steps: list[tuple[UUID, Step]]
) -> list[list[Accepted] | Exception]:
    """Write the batch (in the group commit's transaction): as one statement when no life takes
    more than one step in it, else a statement per kind of write. The transaction stays even
    around one statement: a server killed before its COMMIT leaves nothing of the batch behind,
    where a statement committing on its own would finish and commit after the server was gone,
    and its senders, who got no answer, would send it again."""
    planned = [p for a in answers if not isinstance(a, Exception) for p in a]
    if not planned:
        # Every request refused: nothing to write.
        return [a for a in answers if isinstance(a, Exception)]
    suppressions = [
        (p.window[0], p.event.alert_id, p.event.tenant_id, p.window[1])
        for p in planned
        if p.window is not None and p.event.alert_id is not None
    ]
    in_one = alerts_store.steps_in_one(steps)
    if in_one is not None:
        created = await enqueue_together(
            db,
            [p.event for p in planned],
            lives=Part(*in_one),
            after=Part(SUPPRESSIONS_IN_ONE, suppression_values(suppressions))
            if suppressions
            else None,
        )
    else:
        actual = await alerts_store.apply_steps(db, steps)
        await record_suppressions(
            db, [(w, actual.get(a, a), t, until) for w, a, t, until in suppressions]
        )
        created = await enqueue(db, [_with_alert(p.event, actual) for p in planned])
    return _accepted(answers, iter(created))


def _accepted(
    answers: list[list[_Planned] | Exception], created: Iterator[tuple[UUID, EventStatus]]
) -> list[list[Accepted] | Exception]:
    results: list[list[Accepted] | Exception] = []
    for answer in answers:
        if isinstance(answer, Exception):
            results.append(answer)
            continue
        accepted = []
        for one in answer:
            event_id, status = next(created)
            accepted.append(
                Accepted(
                    id=event_id,
                    dedup_key=one.event.dedup_key,
                    service=one.service,
                    status=status,
                    kind=one.event.kind,
                )
            )
        results.append(accepted)
    return results


def _alerts_of(submission: _Submission) -> list[tuple[UUID, str]]:
    """The alerts a request writes the life of: two batches written at once never share one,
    so the second always reads the life the first left."""
    return [
        (submission.tenant_id, wire_dedup_key(m.item.dedup_key))
        for m in submission.matched
        if isinstance(m.item, Alert) and m.item.dedup_key is not None
    ]


def _with_alert(event: NewEvent, actual: dict[UUID, UUID]) -> NewEvent:
    alert_id = event.alert_id
    if alert_id is None:
        return event
    return replace(event, alert_id=actual.get(alert_id, alert_id))


def _observe_batch(requests: int, seconds: float) -> None:
    INGEST_BATCH_REQUESTS.observe(requests)
    INGEST_COMMIT_SECONDS.observe(seconds)


async def view_of(deps: Deps, tenant_id: UUID) -> RoutingView:
    """What routing needs of the tenant, from memory while the process's cache is current."""
    return await cached_view(deps.cache, deps.db, tenant_id)


async def accept(
    deps: Deps,
    tenant_id: UUID,
    items: Sequence[Item],
    *,
    source: str,
    due_in: Sequence[timedelta | None] = (),
    budget: Budget | None = None,
) -> list[Accepted]:
    """Route, map and commit `items` (all or none), with other requests' in one transaction.
    `due_in`, one per item when given, holds an item's events back that long before their
    first send (a test event's resolve). `budget` is paid the number of events (one per alert
    and service) before they are written, and raises to refuse them."""
    view = await view_of(deps, tenant_id)
    for last_try in (False, True):
        matched = await _matched(view, tenant_id, items, due_in)
        submission = _Submission(tenant_id, view, matched, source, budget)
        try:
            group = deps.group_commits.of(
                write_batch, drains=DRAINS, keys=_alerts_of, observe=_observe_batch
            )
            accepted = await group.submit(submission)
            break
        except ServicesChanged:
            # A service was removed after the view was read: route again on what is there.
            if last_try:
                raise
            view = await load_view(deps.db, tenant_id)
        except LivesChanged:
            # A life was swept while the request used it (an alert silent for the whole
            # retention period): planned again, the request finds it gone, as the sweep meant.
            # Retrying costs only this rare request; locking the lives it reads would cost
            # every one.
            if last_try:
                raise
    for a in accepted:
        INGESTED.labels(source, a.kind).inc()
    return accepted
