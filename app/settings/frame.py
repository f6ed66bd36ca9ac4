"""What every settings screen needs: the signed-in tenant, and the guidance shown where it
applies (alerts that would be refused for want of a rule; a key PagerDuty no longer knows)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from starlette.requests import Request

from app.deps import Deps
from app.ingest import store as ingest_store
from app.installations.store import Installation, PdService
from app.outbox.states import ServiceHealth
from app.tenants.store import Tenant, get_tenant
from app.web.session import SignedOut, current_tenant_id

# What the dispatcher writes as an unhealthy service's reason when PagerDuty keeps refusing its
# key (app/dispatch/settle.py): for a key pdconnect was given by PagerDuty (OAuth, Simple
# Install), reconnecting is the fix, not pasting a key by hand.
KEY_REFUSED = "PagerDuty rejects its routing key"


async def signed_in_tenant(request: Request, deps: Deps) -> Tenant:
    tenant = await get_tenant(deps.db, current_tenant_id(request))
    if tenant is None:
        request.session.clear()
        raise SignedOut()
    return tenant


@dataclass(frozen=True)
class NeedsRule:
    """Several services and no rule: a firing alert that names no service is refused (422).
    The settings pages say so and offer a catch-all rule to one of them."""

    services: list[PdService]


async def needs_first_rule(
    deps: Deps, tenant_id: UUID, services: list[PdService]
) -> NeedsRule | None:
    if len(services) < 2:
        return None
    if await ingest_store.list_rules(deps.db, tenant_id):
        return None
    return NeedsRule(services=[s for s in services if s.health != ServiceHealth.GONE] or services)


def reconnect_url(installation: Installation) -> str | None:
    """Where a broken service of this account is repaired by connecting again: the keys came
    from PagerDuty, so PagerDuty gives new ones. None for keys pasted by hand."""
    if installation.method == "oauth":
        return "/pagerduty/connect?method=oauth"
    if installation.method == "simple_install":
        return f"/settings/connect/install?region={installation.region}"
    return None


def key_refused(service: PdService) -> bool:
    return service.health == ServiceHealth.UNHEALTHY and (service.health_reason or "").startswith(
        KEY_REFUSED
    )
