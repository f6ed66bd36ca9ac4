"""`GET /settings/keys`: the tenant's ingest keys (name, the first characters, created, last
used), a named new one (its whole value shown once, on the answer to the form, never again),
and revoking one after a confirmation. app/tenants/keys.py makes and checks the keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.errors import NotFoundError
from app.settings.frame import signed_in_tenant
from app.settings.store import ingest_key_names
from app.tenants import store
from app.tenants.keys import issue_ingest_key
from app.tenants.store import IngestKey
from app.web.api import get_deps, path_uuid
from app.web.render import flash, redirect, render
from app.web.routing import page
from app.web.session import check_csrf, current_tenant_id

KEYS = "/settings/keys"
KEY_NAME_MAX_LENGTH = 60


def _name_problem(name: str) -> str | None:
    if not name:
        return "Give the key a name: the sender that will use it, such as “Alertmanager prod”."
    if len(name) > KEY_NAME_MAX_LENGTH or not name.isprintable():
        return f"A key's name is one line of at most {KEY_NAME_MAX_LENGTH} characters."
    return None


async def keys_view(
    request: Request,
    deps: Deps,
    *,
    created: tuple[IngestKey, str] | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    tenant = await signed_in_tenant(request, deps)
    keys = await store.list_ingest_keys(deps.db, tenant.id)
    return render(
        request,
        "keys.html",
        {
            "tenant": tenant,
            # Live keys first, newest first; revoked ones after, for the record.
            "keys": sorted(
                keys, key=lambda k: (k.revoked_at is not None, -k.created_at.timestamp())
            ),
            "names": await ingest_key_names(deps.db, tenant.id),
            "created": created,
            "base_url": deps.config.base_url,
            "form": form or {"values": {}, "errors": {}},
            "message_places": ("keys",),
        },
        status_code=status_code,
    )


async def keys_page(request: Request) -> Response:
    return await keys_view(request, get_deps(request))


async def create_key(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    async with request.form() as form:
        check_csrf(request, form)
        name = str(form.get("name") or "").strip()
    problem = _name_problem(name)
    if problem is not None:
        refused = {"values": {"name": name}, "errors": {"name": problem}}
        return await keys_view(request, deps, form=refused, status_code=422)
    async with deps.db.transaction():
        key, plaintext = await issue_ingest_key(deps.db, deps.ingest_key_hasher, tenant_id)
        await store.insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor="tenant admin",
            action="ingest_key.created",
            detail={"key_id": str(key.id), "prefix": key.prefix, "name": name},
        )
    # The answer to this post is the only page that ever holds the key: no redirect, so it is
    # never put in the session or a URL (and pages are sent with Cache-Control: no-store).
    return await keys_view(request, deps, created=(key, plaintext), status_code=201)


async def _tenant_key(deps: Deps, tenant_id: UUID, key_id: UUID) -> IngestKey:
    for key in await store.list_ingest_keys(deps.db, tenant_id):
        if key.id == key_id:
            return key
    raise NotFoundError("ingest key")


async def confirm_revoke(request: Request) -> Response:
    deps = get_deps(request)
    tenant = await signed_in_tenant(request, deps)
    key = await _tenant_key(deps, tenant.id, path_uuid(request, "key_id", "ingest key"))
    names = await ingest_key_names(deps.db, tenant.id)
    return render(
        request, "key_revoke.html", {"tenant": tenant, "key": key, "name": names.get(key.id)}
    )


async def revoke_key(request: Request) -> Response:
    deps = get_deps(request)
    tenant_id = current_tenant_id(request)
    key_id = path_uuid(request, "key_id", "ingest key")
    async with request.form() as form:
        check_csrf(request, form)
    name = (await ingest_key_names(deps.db, tenant_id)).get(key_id)
    async with deps.db.transaction():
        key = await store.revoke_ingest_key(deps.db, tenant_id=tenant_id, key_id=key_id)
        if key is None:
            raise NotFoundError("ingest key")
        await store.insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor="tenant admin",
            action="ingest_key.revoked",
            detail={
                "key_id": str(key.id),
                "prefix": key.prefix,
                **({"name": name} if name else {}),
            },
        )
    flash(
        request,
        "ok",
        f"Revoked the key {key.prefix}…: senders using it are refused from now on.",
        near="keys",
    )
    return redirect(KEYS)


routes = [
    page(KEYS, keys_page, methods=["GET"]),
    page(KEYS, create_key, methods=["POST"]),
    page(f"{KEYS}/{{key_id}}/revoke", confirm_revoke, methods=["GET"]),
    page(f"{KEYS}/{{key_id}}/revoke", revoke_key, methods=["POST"]),
]
