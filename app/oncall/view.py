"""Who is on call for a tenant's services, as the settings page and the on-call APIs show it:
the last read from PagerDuty (app/oncall/refresh.py), read at once the first time an account is
asked about (or when it has a service the last read did not cover), else as it is, marked
stale while it is due; the background refresher reads it again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from app.deps import Deps
from app.installations import store as installations
from app.installations.store import Installation, PdService
from app.oncall import store
from app.oncall.refresh import READ_WINDOW, refresh_if_free
from app.oncall.store import Snapshot

# Why accounts connected without OAuth show no on-call: PagerDuty gave pdconnect routing keys,
# which reach the Events API only.
NOT_AVAILABLE = {
    "manual": "Pasted integration keys reach PagerDuty's Events API only; reading who is on call "
    "needs its REST API. Connect the account with OAuth (Connect PagerDuty) to see it here.",
    "simple_install": "Simple Install gives pdconnect integration keys for the Events API "
    "only; reading who is on call needs PagerDuty's REST API. Connect the account with OAuth "
    "(Connect PagerDuty) to see it here.",
}
# Within this, a handover reads "Mon 09:00 UTC"; further off, with its date.
NEAR = timedelta(days=6)


def until_text(until: datetime | None, now: datetime) -> str:
    if until is None:
        return ""
    until = until.astimezone(UTC)
    if until - now < NEAR:
        return until.strftime("%a %H:%M UTC")
    return until.strftime("%a %d %b %H:%M UTC")


@dataclass(frozen=True)
class OnCallUser:
    user_id: str
    name: str
    email: str | None
    level: int
    since: datetime | None
    # None: the level names the user directly, on call for good.
    until: datetime | None
    until_text: str
    schedule_id: str | None
    schedule_name: str | None


@dataclass(frozen=True)
class Target:
    type: str  # "schedule" or "user"
    id: str
    name: str


@dataclass(frozen=True)
class LevelView:
    level: int
    delay_minutes: int | None
    targets: list[Target]
    on_call: list[OnCallUser]


@dataclass(frozen=True)
class ServiceOnCall:
    service: PdService
    policy_id: str | None = None
    policy_name: str | None = None
    levels: list[LevelView] = field(default_factory=list)
    # This service's own problem (deleted in PagerDuty, out of the token's reach).
    error: str | None = None

    @property
    def now(self) -> list[OnCallUser]:
        """Who is paged first: the on-call users of the first level that has any."""
        for level in self.levels:
            if level.on_call:
                return level.on_call
        return []


@dataclass(frozen=True)
class AccountOnCall:
    installation: Installation
    available: bool
    unavailable_reason: str | None
    services: list[ServiceOnCall]
    fetched_at: datetime | None = None
    stale: bool = False
    # The last read's failure; what is shown is then the read before it, if any.
    error: str | None = None
    error_at: datetime | None = None


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _levels(entry: dict[str, Any], now: datetime) -> list[LevelView]:
    levels = []
    for level in entry["levels"]:
        users = []
        for user in level["on_call"]:
            until = _time(user["until"])
            schedule = user["schedule"]
            users.append(
                OnCallUser(
                    user_id=user["user_id"],
                    name=user["name"],
                    email=user["email"],
                    level=level["level"],
                    since=_time(user["since"]),
                    until=until,
                    until_text=until_text(until, now),
                    schedule_id=None if schedule is None else schedule["id"],
                    schedule_name=None if schedule is None else schedule["name"],
                )
            )
        levels.append(
            LevelView(
                level=level["level"],
                delay_minutes=level["delay_minutes"],
                targets=[Target(t["type"], t["id"], t["name"]) for t in level["targets"]],
                on_call=users,
            )
        )
    return levels


def _service(service: PdService, data: dict[str, Any] | None, now: datetime) -> ServiceOnCall:
    entry = None if data is None else data["services"].get(service.pd_service_id)
    if entry is None:
        return ServiceOnCall(service=service)
    policy = entry["policy"]
    return ServiceOnCall(
        service=service,
        policy_id=None if policy is None else policy["id"],
        policy_name=None if policy is None else policy["name"],
        levels=_levels(entry, now),
        error=entry["error"],
    )


def _needs_reading(snapshot: Snapshot, services: list[PdService], now: datetime) -> bool:
    """Read while the reader waits: never read, read long ago (nobody looked meanwhile), or a
    service connected since; and only when due, so a failing account is not read again by
    every reader."""
    if snapshot.next_refresh_at > now:
        return False
    if snapshot.data is None or snapshot.fetched_at is None:
        return True
    if snapshot.fetched_at < now - READ_WINDOW:
        return True
    known = snapshot.data["services"]
    return any(s.pd_service_id not in known for s in services)


async def account_oncall(
    deps: Deps, installation: Installation, services: list[PdService]
) -> AccountOnCall:
    if installation.method != "oauth":
        return AccountOnCall(
            installation=installation,
            available=False,
            unavailable_reason=NOT_AVAILABLE.get(installation.method),
            services=[ServiceOnCall(service=s) for s in services],
        )
    services = [s for s in services if s.pd_service_id is not None]
    now = deps.clock()
    snapshot = await store.note_read(
        deps.db, installation_id=installation.id, tenant_id=installation.tenant_id, now=now
    )
    if (
        services
        and _needs_reading(snapshot, services, now)
        and await refresh_if_free(deps, installation)
    ):
        snapshot = await store.get_snapshot(deps.db, installation.id) or snapshot
        now = deps.clock()
    return AccountOnCall(
        installation=installation,
        available=True,
        unavailable_reason=None,
        services=[_service(s, snapshot.data, now) for s in services],
        fetched_at=snapshot.fetched_at,
        stale=snapshot.fetched_at is None or snapshot.next_refresh_at <= now,
        error=snapshot.error,
        error_at=snapshot.error_at,
    )


async def tenant_oncall(deps: Deps, tenant_id: UUID) -> list[AccountOnCall]:
    """Every account of the tenant, in the settings page's order."""
    services = await installations.list_services(deps.db, tenant_id)
    return [
        await account_oncall(deps, i, [s for s in services if s.installation_id == i.id])
        for i in await installations.list_installations(deps.db, tenant_id)
    ]
