"""Connect by manual key: an integration key (Events API v2) or a service key (v1), pasted by
an admin who will not authorize an app. Shared by the settings form and the admin API.

The admin names the key's region (`app.installations.regions`). A tenant's pasted keys are
grouped into one installation per region, since the installation holds the events URL its
services are sent to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from uuid import UUID

from app.deps import Deps
from app.errors import ConflictError, InputError
from app.installations import caps, store
from app.installations.regions import read_region
from app.installations.store import Installation, PdService
from app.tenants.store import insert_audit

# PagerDuty's routing keys, v2 integration keys and v1 service keys alike, are 32 characters.
ROUTING_KEY_LENGTH = 32
ROUTING_KEY = re.compile(rf"^[A-Za-z0-9]{{{ROUTING_KEY_LENGTH}}}$")
API_VERSIONS = ("v2", "v1")
NAME_MAX_LENGTH = 255
# Keys pasted before a region could be chosen share one installation under this key, in the
# region the deployment had then; later ones are keyed by region ("manual:eu").
LEGACY_ACCOUNT_KEY = "manual"


@dataclass(frozen=True)
class ManualKey:
    name: str
    routing_key: str = field(repr=False)
    api_version: str
    region: str


def validate_manual_key(
    name: object, routing_key: object, api: object, region: object, *, default_region: str
) -> ManualKey:
    if not isinstance(name, str) or not name.strip():
        raise InputError("name", "is required")
    name = name.strip()
    # Surrogates too: JSON can carry a lone \ud800 escape, and PostgreSQL cannot store it.
    if len(name) > NAME_MAX_LENGTH or any(ord(c) < 32 or 0xD800 <= ord(c) < 0xE000 for c in name):
        raise InputError("name", f"must be at most {NAME_MAX_LENGTH} printable characters")
    if not isinstance(routing_key, str) or not routing_key.strip():
        raise InputError("routing_key", "is required")
    if not ROUTING_KEY.match(routing_key.strip()):
        raise InputError(
            "routing_key",
            f"must be PagerDuty's {ROUTING_KEY_LENGTH}-character integration or service key",
        )
    api = api or "v2"
    if api not in API_VERSIONS:
        raise InputError("api", "must be v2 (integration key) or v1 (service key)")
    assert isinstance(api, str)
    return ManualKey(
        name=name,
        routing_key=routing_key.strip(),
        api_version=api,
        region=read_region(region, default_region),
    )


async def _installation_for(deps: Deps, tenant_id: UUID, region: str) -> Installation:
    """The tenant's manual installation of this region, made on first use. A keyed
    installation never changes region (the upsert keeps it), so matching on region is safe."""
    existing = next(
        (
            i
            for i in await store.list_installations(deps.db, tenant_id)
            if i.method == "manual" and i.region == region
        ),
        None,
    )
    return await store.upsert_keyed_installation(
        deps.db,
        tenant_id=tenant_id,
        method="manual",
        account_key=existing.account_key if existing else f"{LEGACY_ACCOUNT_KEY}:{region}",
        subdomain=None,
        account_name=None,
        region=region,
        events_url=deps.pd_hosts.region(region).events_url,
    )


def manual_kind(key: ManualKey) -> str:
    """`ruleset` for an event ruleset's routing key (PagerDuty's begin with `R`; integration
    keys are hex), so that change events, which rulesets refuse, are refused up front."""
    return "ruleset" if key.api_version == "v2" and key.routing_key.startswith("R") else "manual"


async def add_manual_service(
    deps: Deps, tenant_id: UUID, key: ManualKey, *, actor: str
) -> PdService:
    async with deps.db.transaction():
        installation = await _installation_for(deps, tenant_id, key.region)
        service = await store.insert_manual_service(
            deps.db,
            tenant_id=tenant_id,
            installation_id=installation.id,
            name=key.name,
            kind=manual_kind(key),
            api_version=key.api_version,
            routing_key_enc=deps.vault.encrypt(key.routing_key),
            routing_key_hash=deps.routing_key_hasher.digest(key.routing_key),
        )
        if service is None:
            raise ConflictError("routing_key", "this key is already connected")
        await caps.check_cap(deps, tenant_id)
        await insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor=actor,
            action="service.added",
            detail={
                "service_id": str(service.id),
                "name": key.name,
                "method": "manual",
                "region": key.region,
            },
        )
    return service
