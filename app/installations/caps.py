"""The cap on services per tenant (PDCONNECT_MAX_SERVICES_PER_TENANT): every service is one
more event for each alert a rule fans out to it, so the cap bounds what one alert can write."""

from __future__ import annotations

from uuid import UUID

from app.deps import Deps
from app.errors import InputError
from app.installations import store


def too_many_services(cap: int, count: int) -> InputError:
    return InputError(
        "services",
        f"this would connect {count} services; a tenant may connect at most {cap} "
        "(PDCONNECT_MAX_SERVICES_PER_TENANT)",
    )


async def check_room(deps: Deps, tenant_id: UUID, adding: int) -> None:
    """Before asking PagerDuty for anything: refuse `adding` new services that cannot fit."""
    count = len(await store.list_services(deps.db, tenant_id)) + adding
    if count > deps.config.max_services_per_tenant:
        raise too_many_services(deps.config.max_services_per_tenant, count)


async def check_cap(deps: Deps, tenant_id: UUID) -> None:
    """After adding services, inside the transaction that adds them: refuse (rolling them
    back) when the tenant is now over the cap."""
    count = await store.count_services_locked(deps.db, tenant_id)
    if count > deps.config.max_services_per_tenant:
        raise too_many_services(deps.config.max_services_per_tenant, count)
