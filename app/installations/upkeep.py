"""Scheduled upkeep of connections, beside every dispatcher: renew access tokens a day before
they expire, run the connection health check (app/installations/health_check.py: what pdconnect
created in PagerDuty still exists, webhooks enabled, error rate; routing keys once a day) and
keep its report, reconcile open alerts' incident states that webhooks left stale and keep
webhook subscriptions on (app/incidents/reconcile.py), and forget webhook delivery ids old
enough that PagerDuty will not repeat them (it retries for 48 hours).

Installations are claimed with SKIP LOCKED and rescheduled in the same statement, so any number
of workers share the work and each installation is checked once per period."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from uuid import UUID

from app.db.periodic import run_periodically
from app.deps import Deps
from app.incidents.reconcile import Reconciler
from app.installations import store
from app.installations.health_check import check_connection
from app.installations.tokens import fresh_access_token
from app.pagerduty.errors import Unauthorized
from app.pagerduty.incidents import IncidentsClient

log = logging.getLogger("pdconnect.upkeep")

TOKEN_RENEW_AHEAD = timedelta(days=1)
WEBHOOK_IDS_KEPT = timedelta(days=7)
BATCH = 10


async def incidents_client(deps: Deps, tenant_id: UUID, installation_id: UUID) -> IncidentsClient:
    """The REST access reconciliation and notes use (app/incidents/access.py): a fresh token
    of an active OAuth connection; Unauthorized for any other."""
    installation = await store.get_installation(
        deps.db, tenant_id=tenant_id, installation_id=installation_id
    )
    if installation is None or installation.api_url is None:
        raise Unauthorized("this connection has no REST access")
    token = await fresh_access_token(deps, installation.id)
    return IncidentsClient(deps.http, installation.api_url, token)


class Upkeep:
    def __init__(
        self,
        deps: Deps,
        *,
        period: timedelta,
        tick: timedelta = timedelta(seconds=5),
        reconciler: Reconciler | None = None,
    ):
        self.deps = deps
        self.period = period
        self.tick = tick
        self.reconciler = reconciler or Reconciler(
            deps,
            incidents_client,
            after=timedelta(seconds=deps.config.reconcile_after_seconds),
        )

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            self.once, every=self.tick, stop=stop, log=log, what="connection upkeep"
        )

    async def once(self) -> int:
        due = await self.deps.db.fetch_all(
            """
            UPDATE installations SET next_check_at = now() + CAST(:period AS interval)
            WHERE id IN (
                SELECT id FROM installations
                WHERE method = 'oauth' AND status = 'active' AND next_check_at <= now()
                ORDER BY next_check_at LIMIT :batch FOR UPDATE SKIP LOCKED)
            RETURNING id, tenant_id
            """,
            {"period": self.period, "batch": BATCH},
        )
        for row in due:
            installation = await store.get_installation(
                self.deps.db,
                tenant_id=row._mapping["tenant_id"],
                installation_id=row._mapping["id"],
            )
            if installation is not None:
                await self._check(installation)
        await self.reconciler.once()
        await self.deps.db.execute(
            "DELETE FROM webhook_deliveries WHERE received_at < now() - CAST(:kept AS interval)",
            {"kept": WEBHOOK_IDS_KEPT},
        )
        return len(due)

    async def _check(self, installation: store.Installation) -> None:
        # PagerDuty's refusals and failures become the report's lines (a refused token also
        # marks the account "needs reconnect"); the next period checks again.
        report = await check_connection(
            self.deps,
            installation,
            trigger="scheduled",
            probe_keys=None,
            renew_ahead=TOKEN_RENEW_AHEAD,
        )
        if report.status == "failed":
            log.warning("a connection check found %d problem(s)", report.problems)
