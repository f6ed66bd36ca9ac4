"""Reading who is on call from PagerDuty, per OAuth account, and keeping it fresh.

One read costs, sequentially: one GET per connected service (its escalation policy), one per
distinct policy (its levels), and one GET /oncalls per 20 policies. A tenant has at most a
hundred services, and a read is due once per refresh period (5 minutes), or at the next
handover it showed: far below PagerDuty's 960 requests a minute per app and account, and a
429 only postpones the account's next read. Only accounts someone read lately (the settings
page, the on-call APIs) are kept fresh; the others cost nothing.

Readers never wait for a refresh of data they already have: they are shown the last read,
marked stale, while the background refresher (beside every dispatcher, like the upkeep) reads
it again. One account failing (a revoked token, PagerDuty answering 5xx) is recorded on its own
snapshot and changes nothing for the others."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from app.db.errors import database_unreachable
from app.db.periodic import run_periodically
from app.deps import Deps
from app.installations import store as installations
from app.installations.store import Installation
from app.installations.tokens import fresh_access_token
from app.oncall import store
from app.pagerduty.errors import (
    Forbidden,
    NotFound,
    PagerDutyError,
    RetryLater,
    Unauthorized,
)
from app.pagerduty.oncall import OnCall, OnCallClient, PolicyLevels

log = logging.getLogger("pdconnect.oncall")

# A refresh holds its account this long at most; past it another process may take it over.
LEASE = timedelta(seconds=60)
# A whole read of one account, however slow PagerDuty is.
READ_DEADLINE_SECONDS = 30.0
# Accounts nobody read for this long are no longer refreshed (their next read refreshes them).
READ_WINDOW = timedelta(hours=1)
BATCH = 10


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _user(entry: OnCall) -> dict[str, Any]:
    return {
        "user_id": entry.user_id,
        "name": entry.user_name,
        "email": entry.user_email,
        "since": _iso(entry.start),
        "until": _iso(entry.end),
        "schedule": None
        if entry.schedule_id is None
        else {"id": entry.schedule_id, "name": entry.schedule_name or entry.schedule_id},
    }


def _levels(policy: PolicyLevels, oncalls: list[OnCall]) -> list[dict[str, Any]]:
    return [
        {
            "level": level.number,
            "delay_minutes": level.delay_minutes,
            "targets": [{"type": t.type, "id": t.id, "name": t.name} for t in level.targets],
            "on_call": [
                _user(o) for o in oncalls if o.policy_id == policy.id and o.level == level.number
            ],
        }
        for level in policy.levels
    ]


async def read_account(client: OnCallClient, pd_service_ids: list[str]) -> dict[str, Any]:
    """{"services": {pd service id: {"policy", "levels", "error"}}}. A service or policy gone
    (404) or out of the token's reach (403) is an error of that service alone; anything else
    fails the whole read."""
    services: dict[str, dict[str, Any]] = {}
    policy_of: dict[str, str] = {}
    for service_id in dict.fromkeys(pd_service_ids):
        try:
            service = await client.get_service(service_id)
        except (NotFound, Forbidden) as exc:
            services[service_id] = {"policy": None, "levels": [], "error": str(exc)}
            continue
        if service.escalation_policy_id is None:
            services[service_id] = {
                "policy": None,
                "levels": [],
                "error": "PagerDuty shows no escalation policy for this service.",
            }
            continue
        policy_of[service_id] = service.escalation_policy_id
    policies: dict[str, PolicyLevels | str] = {}
    for policy_id in dict.fromkeys(policy_of.values()):
        try:
            policies[policy_id] = await client.get_escalation_policy(policy_id)
        except (NotFound, Forbidden) as exc:
            policies[policy_id] = str(exc)
    readable = [p.id for p in policies.values() if isinstance(p, PolicyLevels)]
    oncalls = await client.list_oncalls(readable) if readable else []
    for service_id, policy_id in policy_of.items():
        policy = policies[policy_id]
        if isinstance(policy, str):
            services[service_id] = {"policy": None, "levels": [], "error": policy}
            continue
        services[service_id] = {
            "policy": {"id": policy.id, "name": policy.name},
            "levels": _levels(policy, oncalls),
            "error": None,
        }
    return {"services": services}


def next_handover(data: dict[str, Any], now: datetime) -> datetime | None:
    """The earliest end of an on-call shift shown, after `now`: the read is stale from then."""
    ends = [
        datetime.fromisoformat(user["until"])
        for service in data["services"].values()
        for level in service["levels"]
        for user in level["on_call"]
        if user["until"] is not None
    ]
    later = [end for end in ends if end > now]
    return min(later) if later else None


async def refresh(deps: Deps, installation: Installation) -> None:
    """Read the account now and store the result or the error. The caller holds its claim."""
    period = timedelta(seconds=deps.config.oncall_refresh_seconds)
    ids = [
        s.pd_service_id
        for s in await installations.list_services(deps.db, installation.tenant_id)
        if s.installation_id == installation.id and s.pd_service_id is not None
    ]
    now = deps.clock()
    try:
        if installation.api_url is None:
            raise Unauthorized("this connection has no REST access")
        async with asyncio.timeout(READ_DEADLINE_SECONDS):
            token = await fresh_access_token(deps, installation.id)
            data = await read_account(OnCallClient(deps.http, installation.api_url, token), ids)
    except TimeoutError:
        error = f"PagerDuty did not answer within {READ_DEADLINE_SECONDS:g} seconds."
        await _failed(deps, installation, error, now + period)
        return
    except Unauthorized as exc:
        await _failed(deps, installation, str(exc), now + period)
        return
    except RetryLater as exc:
        wait = max(period, timedelta(seconds=exc.retry_after or 0))
        await _failed(deps, installation, str(exc), now + wait)
        return
    except PagerDutyError as exc:
        await _failed(deps, installation, str(exc), now + period)
        return
    except Exception as exc:
        if database_unreachable(exc):
            raise
        # A bug must cost this account its on-call, never the settings page showing it.
        log.exception("reading who is on call failed unexpectedly")
        await _failed(deps, installation, "reading it failed unexpectedly", now + period)
        return
    fetched = deps.clock()
    handover = next_handover(data, fetched)
    due = fetched + period if handover is None else min(fetched + period, handover)
    await store.save_data(
        deps.db, installation.id, data=data, fetched_at=fetched, next_refresh_at=due
    )


async def _failed(deps: Deps, installation: Installation, error: str, due: datetime) -> None:
    log.warning("reading who is on call failed for an account: %s", error)
    await store.save_error(
        deps.db, installation.id, error=error, at=deps.clock(), next_refresh_at=due
    )


async def refresh_if_free(deps: Deps, installation: Installation) -> bool:
    """Refresh now unless another process is at it; False when it was."""
    if not await store.claim(deps.db, installation.id, now=deps.clock(), lease=LEASE):
        return False
    await refresh(deps, installation)
    return True


class OnCallRefresher:
    """Beside every dispatcher: reads again the accounts whose snapshot is due."""

    def __init__(self, deps: Deps, *, tick: timedelta = timedelta(seconds=5)) -> None:
        self.deps = deps
        self.tick = tick

    async def run(self, stop: asyncio.Event) -> None:
        await run_periodically(
            self.once, every=self.tick, stop=stop, log=log, what="on-call refresh"
        )

    async def once(self) -> int:
        now = self.deps.clock()
        due = await store.claim_due(
            self.deps.db, now=now, lease=LEASE, read_since=now - READ_WINDOW, batch=BATCH
        )
        for installation_id, tenant_id in due:
            installation = await installations.get_installation(
                self.deps.db, tenant_id=tenant_id, installation_id=installation_id
            )
            if installation is not None and installation.method == "oauth":
                await refresh(self.deps, installation)
        return len(due)
