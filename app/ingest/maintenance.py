"""A tenant's maintenance windows, created, edited, ended early and removed: the admin API and
the settings page both go through here (validation in app/ingest/windows.py, SQL in store).

Ending a window early, or moving its end, lets go of the alerts it holds at that time: the
window ends' job (app/ingest/window_ends.py) then sends or drops them as the window says."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from app.deps import Deps
from app.errors import InputError
from app.ingest import store
from app.ingest.view import windows_of
from app.ingest.windows import Window, parse_window
from app.tenants.store import insert_audit

WINDOWS_MAX = 100


async def _owned(deps: Deps, tenant_id: UUID) -> set[UUID]:
    return {s.id for s in await store.routable_services(deps.db, tenant_id)}


async def list_windows(deps: Deps, tenant_id: UUID) -> tuple[Window, ...]:
    return windows_of(await store.list_windows(deps.db, tenant_id))


async def get_window(deps: Deps, tenant_id: UUID, window_id: UUID) -> Window | None:
    stored = await store.get_window(deps.db, tenant_id, window_id)
    return None if stored is None else windows_of([stored])[0]


async def create_window(deps: Deps, tenant_id: UUID, body: object, *, actor: str) -> UUID:
    values = parse_window(body, await _owned(deps, tenant_id))
    async with deps.db.transaction():
        if len(await store.list_windows(deps.db, tenant_id)) >= WINDOWS_MAX:
            raise InputError("", f"at most {WINDOWS_MAX} maintenance windows; remove old ones")
        window_id = await store.insert_window(deps.db, tenant_id, values)
        await _audit(deps, tenant_id, actor, "maintenance.created", window_id, values.name)
    return window_id


async def update_window(
    deps: Deps, tenant_id: UUID, window_id: UUID, body: object, *, actor: str, merge: bool
) -> bool:
    """PUT replaces the window; PATCH (`merge`) changes only the fields given."""
    current = await get_window(deps, tenant_id, window_id)
    if current is None:
        return False
    if merge:
        if not isinstance(body, dict):
            raise InputError("", "a maintenance window must be a JSON object")
        body = {**_as_body(current), **body}
    values = parse_window(body, await _owned(deps, tenant_id))
    async with deps.db.transaction():
        await store.update_window(deps.db, tenant_id, window_id, values)
        changed = await get_window(deps, tenant_id, window_id)
        assert changed is not None
        now = deps.clock()
        occurrence = changed.occurrence_at(now)
        # The alerts it holds go when the occurrence now ends (at once, if it is not on).
        await store.suppressions_end_at(deps.db, window_id, occurrence[1] if occurrence else now)
        await _audit(deps, tenant_id, actor, "maintenance.changed", window_id, values.name)
    return True


async def end_window(deps: Deps, tenant_id: UUID, window_id: UUID, *, actor: str) -> bool:
    window = await get_window(deps, tenant_id, window_id)
    if window is None:
        return False
    now = deps.clock()
    async with deps.db.transaction():
        await store.end_window(deps.db, tenant_id, window_id, now)
        await store.suppressions_end_at(deps.db, window_id, now)
        await _audit(deps, tenant_id, actor, "maintenance.ended", window_id, window.name)
    return True


async def delete_window(deps: Deps, tenant_id: UUID, window_id: UUID, *, actor: str) -> bool:
    """Removes the window; alerts it still holds are forgotten, not sent (end it first to have
    them sent)."""
    window = await get_window(deps, tenant_id, window_id)
    if window is None:
        return False
    async with deps.db.transaction():
        await store.delete_window(deps.db, tenant_id, window_id)
        await _audit(deps, tenant_id, actor, "maintenance.removed", window_id, window.name)
    return True


def _as_body(window: Window) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "name": window.name,
        "starts_at": iso(window.starts_at),
        "ends_at": iso(window.ends_at),
        "recurrence": window.recurrence,
        "time_zone": window.time_zone,
        "recurs_until": iso(window.recurs_until),
        "service_ids": [str(s) for s in window.service_ids],
        "conditions": [{"field": c.field, "op": c.op, "value": c.value} for c in window.conditions],
        "on_end": window.on_end,
    }


async def _audit(
    deps: Deps, tenant_id: UUID, actor: str, action: str, window_id: UUID, name: str
) -> None:
    await insert_audit(
        deps.db,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        detail={"window": str(window_id), "name": name},
    )
