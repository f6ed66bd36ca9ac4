"""Who a request speaks for: the operator's admin token on a tenant of the admin API, or a
tenant's ingest key (the ingest and delivery APIs). The route modules of every domain ask
here; a refusal raises `Unauthenticated` or `NotFoundError`, which the app answers."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request

from app.deps import Deps
from app.errors import NotFoundError, Unauthenticated
from app.tenants import store
from app.tenants.keys import authenticate_and_spend
from app.tenants.ratelimit import IngestRateLimit, local_budgets
from app.tenants.store import IngestKey, Tenant
from app.web.api import get_deps, path_uuid, require_admin


async def admin_tenant(request: Request) -> tuple[Deps, Tenant]:
    """The admin API's `{tenant_id}`: the caller must hold the admin token; an unknown id is 404."""
    deps = require_admin(request)
    tenant = await store.get_tenant(deps.db, path_uuid(request, "tenant_id", "tenant"))
    if tenant is None:
        raise NotFoundError("tenant")
    return deps, tenant


async def request_ingest_key(request: Request, presented: str | None) -> IngestKey:
    """The ingest key `presented` (a drop-in's body carries it), else the one in the path
    (`/k/<key>/…`), else `Authorization: Bearer`; its use is counted against its rate limit.
    With the process's cache, both from memory (app/tenants/keys.py, ratelimit.py)."""
    deps = get_deps(request)
    if presented is None:
        presented = request.path_params.get("ingest_key")
    if presented is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else None
    key = (
        await authenticate_and_spend(
            deps.db,
            deps.ingest_key_hasher,
            presented,
            limit=IngestRateLimit.from_config(deps.config),
            now=deps.clock(),
            cache=deps.cache,
            budgets=local_budgets(deps),
        )
        if presented
        else None
    )
    if key is None:
        raise Unauthenticated()
    return key


async def request_tenant(request: Request) -> UUID:
    """The tenant of the request's ingest key (the delivery API authenticates with it too)."""
    return (await request_ingest_key(request, None)).tenant_id
