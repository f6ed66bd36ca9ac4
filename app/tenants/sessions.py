"""Browser sessions that can be ended: a server-side record per signed-in browser, checked on
every request.

Signing in opens a record and puts its random token in the (signed) cookie; signing out deletes
the record; an operator's "sign out everywhere" deletes all of a tenant's records and voids its
unused sign-in links; deleting a tenant deletes its records by cascade. The middleware
that checks them on every request is app/tenants/middleware.py; signing in and out,
app/tenants/pages.py.

Which keys sign the cookie is another matter (SECRET_KEY and its rotation): records are found
by the sha256 of their token, which no key enters, so rotating SECRET_KEY leaves them be.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from uuid import UUID

from app.crypto import random_token
from app.deps import Deps
from app.tenants import session_store

# A session unused for this long ends; the cookie is given the same age (app/main.py).
SESSION_IDLE = timedelta(hours=12)
# A session in use is renewed (one write) at most this often, not on every request.
RENEW_EVERY = timedelta(minutes=5)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_record(deps: Deps, tenant_id: UUID, *, replacing: str | None) -> str:
    """A new record signed in to the tenant; the record `replacing` names, if any, ends with
    it. Returns the new record's token, for the cookie."""
    token = random_token()
    async with deps.db.transaction():
        await end_record(deps, replacing)
        await session_store.insert_session(
            deps.db,
            token_hash=_hash(token),
            tenant_id=tenant_id,
            idle_seconds=SESSION_IDLE.total_seconds(),
        )
    return token


async def end_record(deps: Deps, token: str | None) -> None:
    if token is not None:
        await session_store.delete_session(deps.db, token_hash=_hash(token))


async def end_tenant_sessions(deps: Deps, tenant_id: UUID) -> tuple[int, int]:
    """Sign every browser out of the tenant, and void its sign-in links not used yet (each is
    a session to come). Returns how many of each."""
    async with deps.db.transaction():
        sessions = await session_store.delete_tenant_sessions(deps.db, tenant_id)
        links = await session_store.void_unused_links(deps.db, tenant_id, now=deps.clock())
    return sessions, links


async def live_record_tenant(deps: Deps, token: str) -> UUID | None:
    """The tenant of the record `token` names, if the record is live (and then renewed)."""
    return await session_store.live_session_tenant(
        deps.db,
        token_hash=_hash(token),
        idle_seconds=SESSION_IDLE.total_seconds(),
        renew_every_seconds=RENEW_EVERY.total_seconds(),
    )
