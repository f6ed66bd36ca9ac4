"""A tenant's acknowledge and resolve targets per PagerDuty severity (its SLA): checked, saved
with an audit entry. An alert that misses one is a breach (found by the fold, rollup.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from databases import Database

from app.analytics import store
from app.analytics.store import SEVERITIES, Target
from app.errors import InputError, key_name
from app.tenants.store import insert_audit

# A target longer than the longest window could never be judged on the page.
TARGET_MAX_SECONDS = 30 * 24 * 3600
KINDS = ("acknowledge_seconds", "resolve_seconds")


def _seconds(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field, "must be a whole number of seconds, or null for no target")
    if not 1 <= value <= TARGET_MAX_SECONDS:
        raise InputError(field, f"must be between 1 and {TARGET_MAX_SECONDS} seconds (30 days)")
    return value


def parse_targets(body: Mapping[str, Any]) -> list[Target]:
    """`{"targets": {"critical": {"acknowledge_seconds": 300, "resolve_seconds": 3600}, …}}`:
    the whole set; a severity left out, or given nulls, has no target."""
    unknown = set(body) - {"targets"}
    if unknown:
        raise InputError(key_name(sorted(unknown)[0]), "is not a field of targets (only `targets`)")
    given = body.get("targets", {})
    if not isinstance(given, dict):
        raise InputError("targets", "must be an object of severities")
    found: list[Target] = []
    for severity, value in given.items():
        # The sender's keys, named so that any JSON answer can carry them.
        field = f"targets.{key_name(severity)}"
        if severity not in SEVERITIES:
            raise InputError(field, f"is not a PagerDuty severity ({', '.join(SEVERITIES)})")
        if not isinstance(value, dict):
            raise InputError(field, "must be an object with acknowledge_seconds, resolve_seconds")
        for name in value:
            if name not in KINDS:
                raise InputError(f"{field}.{key_name(name)}", f"is not one of {', '.join(KINDS)}")
        found.append(
            Target(
                severity=severity,
                acknowledge_seconds=_seconds(
                    value.get("acknowledge_seconds"), f"{field}.acknowledge_seconds"
                ),
                resolve_seconds=_seconds(value.get("resolve_seconds"), f"{field}.resolve_seconds"),
            )
        )
    return found


async def save_targets(db: Database, tenant_id: UUID, targets: list[Target], *, actor: str) -> None:
    async with db.transaction():
        await store.replace_targets(db, tenant_id, targets)
        await insert_audit(
            db,
            tenant_id=tenant_id,
            actor=actor,
            action="analytics.targets_changed",
            detail={
                t.severity: {k: getattr(t, k) for k in KINDS}
                for t in targets
                if t.acknowledge_seconds is not None or t.resolve_seconds is not None
            },
        )
