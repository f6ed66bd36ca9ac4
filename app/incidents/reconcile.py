"""Incident states that cannot go stale: open alerts whose state has not moved for a while are
checked against PagerDuty's REST API.

A lost webhook, a subscription that PagerDuty disabled or its owner switched off, or an outage
of our receiver leaves an incident's state as it was. So each upkeep pass takes the open alerts
(at most `BATCH`) whose events and last look are older than PDCONNECT_RECONCILE_AFTER and,
for each OAuth-connected service the alert went to, asks PagerDuty about its incident: by id
when a webhook told it, else by `incident_key` (the dedup key) in that service with
`date_range=all`. The answer is recorded by the same code as the webhook for that change
(app/alerts/incidents.py), which never moves a state backwards: an answer whose
`last_status_change_at` is older than the state recorded changes nothing, so a stale answer
cannot reopen a resolved incident. In the same pass the subscriptions of the accounts it
touched are checked (app/webhooks/watch.py).

Once PagerDuty's incident of every such service is resolved the alert is settled: no more
looks until a new trigger of it. Alerts sent only to pasted keys or Simple Install keys have no
REST access and are settled at once.

PagerDuty allows an app 960 REST requests a minute per user it acts as (developer docs, "REST
API Rate Limits"). Reconciliation spends at most `CALLS_PER_MINUTE` of them per account in each
process (a quarter: the connect flow, health checks and notes use the same token), one request
at a time as the docs advise. A 429 (or a 5xx, or a timeout) pauses that account for
`ratelimit-reset` / `Retry-After` seconds (`DEFAULT_PAUSE` without either) and puts its alerts
back, due, for a later pass: nothing is lost, only delayed. One account's trouble (a 429, a
revoked token, a malformed answer) never stops the other accounts' looks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from app.alerts import incidents
from app.alerts.incidents import IncidentChange, IncidentState
from app.callbacks.emit import from_reconciled
from app.deps import Deps
from app.incidents import store
from app.incidents.access import RestAccess
from app.incidents.store import DueAlert, Target
from app.pagerduty.errors import NotFound, PagerDutyError, RetryLater, Unauthorized
from app.pagerduty.incidents import Incident, IncidentsClient
from app.urls import is_web_url
from app.webhooks.watch import watch_subscriptions

log = logging.getLogger("pdconnect.reconcile")

BATCH = 50
CALLS_PER_MINUTE = 240
DEFAULT_PAUSE = 30.0
TEXT_MAX_LENGTH = 1024
URL_MAX_LENGTH = 2048


@dataclass
class PassReport:
    """What one pass did, for logs and tests."""

    looked_at: int = 0
    changed: int = 0
    settled: int = 0
    put_back: int = 0
    paused: set[UUID] = field(default_factory=set)
    subscription_actions: list[str] = field(default_factory=list)


class _Budget:
    """Requests one account may still get from this process: `CALLS_PER_MINUTE`, refilled
    continuously, and nothing while PagerDuty asked us to wait."""

    def __init__(self, now: float, per_minute: int) -> None:
        self.per_minute = per_minute
        self.tokens = float(per_minute)
        self.at = now
        self.paused_until = 0.0

    def take(self, now: float) -> bool:
        if now < self.paused_until:
            return False
        self.tokens = min(self.per_minute, self.tokens + (now - self.at) * self.per_minute / 60)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _clean(value: str | None, limit: int = TEXT_MAX_LENGTH) -> str | None:
    # As PostgreSQL text holds it (no NUL), cut as the webhook's fields are.
    return None if value is None else value.replace("\x00", "")[:limit] or None


def _web_url(value: str | None) -> str | None:
    if value is None or len(value) > URL_MAX_LENGTH or not is_web_url(value):
        return None
    return value


def _opened(alert: DueAlert) -> datetime:
    # To the second: PagerDuty's REST times have no fraction.
    return alert.opened_at.replace(microsecond=0)


def _for_this_life(state: IncidentState | None, alert: DueAlert) -> IncidentState | None:
    """The recorded state if it can be this alert's incident: an open one, or one resolved
    after the alert opened (a resolved incident of an earlier life of the key is not)."""
    if state is None:
        return None
    if state.status != "resolved" or state.changed_at >= _opened(alert):
        return state
    return None


class Reconciler:
    def __init__(
        self,
        deps: Deps,
        access: RestAccess,
        *,
        after: timedelta,
        batch: int = BATCH,
        calls_per_minute: int = CALLS_PER_MINUTE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deps = deps
        self.access = access
        self.after = after
        self.batch = batch
        self.calls_per_minute = calls_per_minute
        self.monotonic = monotonic
        self._budgets: dict[UUID, _Budget] = {}

    def _budget(self, installation_id: UUID) -> _Budget:
        budget = self._budgets.get(installation_id)
        if budget is None:
            budget = _Budget(self.monotonic(), self.calls_per_minute)
            self._budgets[installation_id] = budget
        return budget

    def _pause(self, installation_id: UUID, exc: RetryLater, report: PassReport) -> None:
        wait = exc.retry_after if exc.retry_after is not None else DEFAULT_PAUSE
        self._budget(installation_id).paused_until = self.monotonic() + wait
        report.paused.add(installation_id)
        log.warning("reconciliation of a PagerDuty account waits %gs: %s", wait, exc)

    async def once(self) -> PassReport:
        report = PassReport()
        db = self.deps.db
        due = await store.claim_due(db, after=self.after, batch=self.batch)
        if not due:
            return report
        found = await store.targets(db, [s for a in due for s in a.service_ids])
        # Per account, the (alert, target) pairs to look at, in the order the alerts came.
        work: dict[UUID, list[tuple[DueAlert, Target]]] = {}
        for alert in due:
            for service_id in alert.service_ids:
                target = found.get(service_id)
                if target is not None and target.tenant_id == alert.tenant_id:
                    work.setdefault(target.installation_id, []).append((alert, target))
        unsettled: set[UUID] = set()
        not_done: dict[UUID, DueAlert] = {}
        for installation_id, pairs in work.items():
            left = await self._account(installation_id, pairs, unsettled, report)
            for alert in left:
                not_done[alert.id] = alert
        await store.put_back(db, list(not_done.values()))
        report.put_back = len(not_done)
        settled = [a.id for a in due if a.id not in unsettled and a.id not in not_done]
        await store.settle(db, settled)
        report.settled = len(settled)
        return report

    async def _account(
        self,
        installation_id: UUID,
        pairs: list[tuple[DueAlert, Target]],
        unsettled: set[UUID],
        report: PassReport,
    ) -> list[DueAlert]:
        """Look at one account's pairs; returns the alerts left for a later pass."""
        budget = self._budget(installation_id)
        if self.monotonic() < budget.paused_until:
            return [alert for alert, _ in pairs]
        tenant_id = pairs[0][1].tenant_id
        try:
            client = await self.access(self.deps, tenant_id, installation_id)
        except RetryLater as exc:
            self._pause(installation_id, exc, report)
            return [alert for alert, _ in pairs]
        except Unauthorized as exc:
            # Its owner marks it needs-reconnect; until then its alerts wait their turn.
            log.warning("reconciliation skips an account without REST access: %s", exc)
            unsettled.update(alert.id for alert, _ in pairs)
            return []
        for index, (alert, target) in enumerate(pairs):
            if not budget.take(self.monotonic()):
                return [a for a, _ in pairs[index:]]
            try:
                if not await self._look(client, alert, target, report):
                    unsettled.add(alert.id)
            except RetryLater as exc:
                self._pause(installation_id, exc, report)
                return [a for a, _ in pairs[index:]]
            except Unauthorized as exc:
                log.warning("reconciliation lost REST access to an account: %s", exc)
                unsettled.update(a.id for a, _ in pairs[index:])
                return []
            except PagerDutyError as exc:
                log.warning("reconciling an incident failed: %s", exc)
                unsettled.add(alert.id)
        await self._watch(installation_id, client, report)
        return []

    async def _watch(
        self, installation_id: UUID, client: IncidentsClient, report: PassReport
    ) -> None:
        try:
            report.subscription_actions += await watch_subscriptions(
                self.deps, installation_id, client, every=self.after
            )
        except RetryLater as exc:
            self._pause(installation_id, exc, report)
        except PagerDutyError as exc:
            log.warning("checking an account's webhook subscriptions failed: %s", exc)

    async def _look(
        self, client: IncidentsClient, alert: DueAlert, target: Target, report: PassReport
    ) -> bool:
        """Ask PagerDuty about the alert's incident in one service and record the answer;
        True when that incident is resolved (nothing more to look for)."""
        recorded = (
            await incidents.states_of(self.deps.db, (target.service_id,), alert.dedup_key)
        ).get(target.service_id)
        state = _for_this_life(recorded, alert)
        if state is not None and state.status == "resolved":
            return True
        if state is not None and state.changed_at > alert.claimed_at - self.after:
            return False  # a webhook moved it lately: not stale
        report.looked_at += 1
        incident = await self._find(client, alert, target, state)
        if incident is None:
            return False  # no incident yet (the trigger not delivered, or not opened one)
        change = self._change(alert, target, incident)
        moved = recorded is None or (recorded.status, recorded.incident_id) != (
            incident.status,
            incident.id,
        )
        async with self.deps.db.transaction():
            kept = await incidents.apply(self.deps.db, change)
            if kept and moved:
                # The vendor's product hears of it as it would have from the lost webhook.
                await from_reconciled(self.deps.db, change)
        if kept and moved:
            report.changed += 1
            log.info(
                "reconciled an incident's state from PagerDuty: %s (was %s)",
                incident.status,
                "unknown" if recorded is None else recorded.status,
            )
        return incident.status == "resolved" and incident.last_status_change_at >= _opened(alert)

    async def _find(
        self,
        client: IncidentsClient,
        alert: DueAlert,
        target: Target,
        state: IncidentState | None,
    ) -> Incident | None:
        if state is not None:
            try:
                return await client.get_incident(state.incident_id)
            except NotFound:
                pass  # merged or deleted: look it up by key
        found = await client.incidents_by_key(
            incident_key=alert.dedup_key, service_id=target.pd_service_id
        )
        # The newest of the key: an earlier life's incident is older than its successor.
        return found[0] if found else None

    @staticmethod
    def _change(alert: DueAlert, target: Target, incident: Incident) -> IncidentChange:
        return IncidentChange(
            tenant_id=alert.tenant_id,
            service_id=target.service_id,
            dedup_key=alert.dedup_key,
            incident_id=incident.id,
            incident_number=incident.number
            if incident.number is not None and 0 < incident.number < 2**31
            else None,
            status=incident.status,
            title=_clean(incident.title),
            html_url=_web_url(incident.html_url),
            changed_by=_clean(incident.last_status_change_by, 200),
            changed_at=incident.last_status_change_at,
            whole_seconds=True,
        )
