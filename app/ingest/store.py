"""SQL for what ingest needs to route an alert: the tenant's services, rules, severities,
what an unmatched alert gets, and maintenance windows (with the alerts they suppressed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from databases import Database

from app.outbox.states import ServiceHealth


@dataclass(frozen=True)
class RoutableService:
    id: UUID
    pd_service_id: str | None
    name: str
    kind: str
    api_version: str
    health: ServiceHealth
    routing_key_hash: str


@dataclass(frozen=True)
class StoredRule:
    id: UUID
    position: int
    name: str
    conditions: list[dict[str, Any]]
    service_ids: tuple[UUID, ...]
    action: str = "page"
    templates: dict[str, Any] = field(default_factory=dict)


async def routable_services(db: Database, tenant_id: UUID) -> list[RoutableService]:
    rows = await db.fetch_all(
        """
        SELECT id, pd_service_id, name, kind, api_version, health, routing_key_hash
        FROM pd_services WHERE tenant_id = :tenant_id ORDER BY created_at, id
        """,
        {"tenant_id": tenant_id},
    )
    return [
        RoutableService(**{**dict(r._mapping), "health": ServiceHealth(r._mapping["health"])})
        for r in rows
    ]


async def list_rules(db: Database, tenant_id: UUID) -> list[StoredRule]:
    rows = await db.fetch_all(
        """
        SELECT id, position, name, conditions, service_ids, action, templates FROM routes
        WHERE tenant_id = :tenant_id ORDER BY position
        """,
        {"tenant_id": tenant_id},
    )
    return [
        StoredRule(
            id=r._mapping["id"],
            position=r._mapping["position"],
            name=r._mapping["name"],
            conditions=_json(r._mapping["conditions"]),
            service_ids=tuple(r._mapping["service_ids"]),
            action=r._mapping["action"],
            templates=_json(r._mapping["templates"]),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class NewRule:
    name: str
    conditions: list[dict[str, Any]]
    service_ids: tuple[UUID, ...]
    action: str = "page"
    templates: dict[str, Any] = field(default_factory=dict)


PlainRule = tuple[str, list[dict[str, Any]], tuple[UUID, ...]]


async def replace_rules(
    db: Database, tenant_id: UUID, rules: Sequence[NewRule | PlainRule]
) -> None:
    """The tenant's whole ordered rule list, replaced in one go (call in a transaction); a
    plain (name, conditions, service_ids) is a paging rule without templates."""
    await db.execute("DELETE FROM routes WHERE tenant_id = :tenant_id", {"tenant_id": tenant_id})
    for position, given in enumerate(rules):
        rule = given if isinstance(given, NewRule) else NewRule(*given)
        await db.execute(
            """
            INSERT INTO routes (tenant_id, position, name, conditions, service_ids, action,
                templates)
            VALUES (:tenant_id, :position, :name, CAST(:conditions AS jsonb), :service_ids,
                :action, CAST(:templates AS jsonb))
            """,
            {
                "tenant_id": tenant_id,
                "position": position,
                "name": rule.name,
                "conditions": json.dumps(rule.conditions),
                "service_ids": list(rule.service_ids),
                "action": rule.action,
                "templates": json.dumps(rule.templates),
            },
        )


async def unmatched_policy(db: Database, tenant_id: UUID) -> str:
    """What an alert matching no rule gets: "refuse" (422) or "suppress"."""
    value = await db.fetch_val(
        "SELECT unmatched FROM routing_settings WHERE tenant_id = :tenant_id",
        {"tenant_id": tenant_id},
    )
    return value if isinstance(value, str) else "refuse"


async def set_unmatched_policy(db: Database, tenant_id: UUID, value: str) -> None:
    await db.execute(
        """
        INSERT INTO routing_settings (tenant_id, unmatched) VALUES (:tenant_id, :value)
        ON CONFLICT (tenant_id) DO UPDATE SET unmatched = EXCLUDED.unmatched, updated_at = now()
        WHERE routing_settings.unmatched IS DISTINCT FROM EXCLUDED.unmatched
        """,
        {"tenant_id": tenant_id, "value": value},
    )


@dataclass(frozen=True)
class StoredWindow:
    id: UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    recurrence: str
    time_zone: str
    recurs_until: datetime | None
    service_ids: tuple[UUID, ...]
    conditions: list[dict[str, Any]]
    on_end: str
    ended_early_at: datetime | None


WINDOW_COLUMNS = (
    "id, name, starts_at, ends_at, recurrence, time_zone, recurs_until, service_ids, "
    "conditions, on_end, ended_early_at"
)


def _window(row: Any) -> StoredWindow:
    m = dict(row._mapping)
    m["service_ids"] = tuple(m["service_ids"])
    m["conditions"] = _json(m["conditions"])
    return StoredWindow(**m)


async def list_windows(db: Database, tenant_id: UUID) -> list[StoredWindow]:
    rows = await db.fetch_all(
        f"""
        SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE tenant_id = :tenant_id
        ORDER BY starts_at, id
        """,
        {"tenant_id": tenant_id},
    )
    return [_window(r) for r in rows]


async def get_window(db: Database, tenant_id: UUID, window_id: UUID) -> StoredWindow | None:
    row = await db.fetch_one(
        f"SELECT {WINDOW_COLUMNS} FROM maintenance_windows "
        "WHERE tenant_id = :tenant_id AND id = :id",
        {"tenant_id": tenant_id, "id": window_id},
    )
    return None if row is None else _window(row)


def _window_values(values: Any) -> dict[str, Any]:
    return {
        "name": values.name,
        "starts_at": values.starts_at,
        "ends_at": values.ends_at,
        "recurrence": values.recurrence,
        "time_zone": values.time_zone,
        "recurs_until": values.recurs_until,
        "service_ids": list(values.service_ids),
        "conditions": json.dumps(
            [{"field": c.field, "op": c.op, "value": c.value} for c in values.conditions]
        ),
        "on_end": values.on_end,
    }


async def insert_window(db: Database, tenant_id: UUID, values: Any) -> UUID:
    """`values` is a validated WindowFields (app/ingest/windows.py)."""
    window_id = await db.fetch_val(
        """
        INSERT INTO maintenance_windows (tenant_id, name, starts_at, ends_at, recurrence,
            time_zone, recurs_until, service_ids, conditions, on_end)
        VALUES (:tenant_id, :name, :starts_at, :ends_at, :recurrence, :time_zone, :recurs_until,
            :service_ids, CAST(:conditions AS jsonb), :on_end)
        RETURNING id
        """,
        {"tenant_id": tenant_id, **_window_values(values)},
    )
    assert isinstance(window_id, UUID)
    return window_id


async def update_window(db: Database, tenant_id: UUID, window_id: UUID, values: Any) -> bool:
    """Replaces the window's schedule and scope; an early end is forgotten (a new end time
    replaces it)."""
    found = await db.fetch_val(
        """
        UPDATE maintenance_windows SET name = :name, starts_at = :starts_at, ends_at = :ends_at,
            recurrence = :recurrence, time_zone = :time_zone, recurs_until = :recurs_until,
            service_ids = :service_ids, conditions = CAST(:conditions AS jsonb),
            on_end = :on_end, ended_early_at = NULL, updated_at = now()
        WHERE tenant_id = :tenant_id AND id = :id
        RETURNING id
        """,
        {"tenant_id": tenant_id, "id": window_id, **_window_values(values)},
    )
    return found is not None


async def end_window(db: Database, tenant_id: UUID, window_id: UUID, at: datetime) -> bool:
    found = await db.fetch_val(
        """
        UPDATE maintenance_windows SET ended_early_at = :at, updated_at = now()
        WHERE tenant_id = :tenant_id AND id = :id RETURNING id
        """,
        {"tenant_id": tenant_id, "id": window_id, "at": at},
    )
    return found is not None


async def delete_window(db: Database, tenant_id: UUID, window_id: UUID) -> bool:
    found = await db.fetch_val(
        "DELETE FROM maintenance_windows WHERE tenant_id = :tenant_id AND id = :id RETURNING id",
        {"tenant_id": tenant_id, "id": window_id},
    )
    return found is not None


async def suppressions_end_at(db: Database, window_id: UUID, until: datetime) -> None:
    """The alerts a window holds are let go at `until` (its occurrence ended or changed)."""
    await db.execute(
        "UPDATE window_suppressions SET until = :until WHERE window_id = :window_id",
        {"window_id": window_id, "until": until},
    )


# (window, alert, tenant, until) for alerts a window suppressed. `ALERT` is where the statement
# that writes a batch at once maps an alert's planned id to its id (app/outbox/events.py).
_SUPPRESSIONS = """
INSERT INTO window_suppressions (window_id, alert_id, tenant_id, until)
SELECT w.window_id, ALERT, w.tenant_id, w.until
FROM unnest(CAST(:windows AS uuid[]), CAST(:alerts AS uuid[]),
    CAST(:tenants AS uuid[]), CAST(:untils AS timestamptz[]))
    AS w(window_id, alert_id, tenant_id, until)
JOINED
ON CONFLICT (window_id, alert_id) DO UPDATE SET until = EXCLUDED.until
"""
SUPPRESSIONS_IN_ONE = "suppressed AS ({})".format(
    _SUPPRESSIONS.replace("ALERT", "COALESCE(p.actual, w.alert_id)").replace(
        "JOINED",
        "LEFT JOIN planned AS p ON p.planned = w.alert_id WHERE (SELECT ok FROM gate)",
    )
)
Suppression = tuple[UUID, UUID, UUID, datetime]


def suppression_values(rows: Sequence[Suppression]) -> dict[str, Any]:
    # One row per window and alert (the last): ON CONFLICT cannot change a row twice.
    unique = list({(r[0], r[1]): r for r in rows}.values())
    return {
        "windows": [r[0] for r in unique],
        "alerts": [r[1] for r in unique],
        "tenants": [r[2] for r in unique],
        "untils": [r[3] for r in unique],
    }


async def record_suppressions(db: Database, rows: Sequence[Suppression]) -> None:
    """(window, alert, tenant, until) for alerts a window suppressed; one statement."""
    if not rows:
        return
    await db.execute(
        _SUPPRESSIONS.replace("ALERT", "w.alert_id").replace("JOINED", ""),
        suppression_values(rows),
    )


async def severity_map(db: Database, tenant_id: UUID) -> dict[str, Any]:
    value = await db.fetch_val("SELECT severity_map FROM tenants WHERE id = :id", {"id": tenant_id})
    parsed = _json(value)
    return parsed if isinstance(parsed, dict) else {}


async def set_severity_map(db: Database, tenant_id: UUID, value: dict[str, Any]) -> None:
    await db.execute(
        "UPDATE tenants SET severity_map = CAST(:value AS jsonb) WHERE id = :id",
        {"id": tenant_id, "value": json.dumps(value)},
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def recent_trigger_body(db: Database, tenant_id: UUID) -> dict[str, Any] | None:
    """The body of the tenant's latest trigger (a template preview's sample)."""
    value = await db.fetch_val(
        """
        SELECT body FROM events WHERE tenant_id = :tenant_id AND kind = 'trigger'
        ORDER BY seq DESC LIMIT 1
        """,
        {"tenant_id": tenant_id},
    )
    parsed = _json(value)
    return parsed if isinstance(parsed, dict) else None


@dataclass(frozen=True)
class Released:
    """An alert a window let go of, and whether that window sends what is still firing."""

    window_id: UUID
    window_name: str
    alert_id: UUID
    tenant_id: UUID
    send: bool


async def release_due(db: Database, limit: int) -> list[Released]:
    """Takes (and forgets) up to `limit` suppressions whose occurrence has ended; call in a
    transaction. SKIP LOCKED: any number of processes share the work."""
    rows = await db.fetch_all(
        """
        DELETE FROM window_suppressions AS ws USING maintenance_windows AS w
        WHERE w.id = ws.window_id AND (ws.window_id, ws.alert_id) IN (
            SELECT window_id, alert_id FROM window_suppressions
            WHERE until <= now() ORDER BY until LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING ws.window_id, w.name, ws.alert_id, ws.tenant_id, w.on_end = 'send' AS send
        """,
        {"limit": limit},
    )
    return [
        Released(
            window_id=r._mapping["window_id"],
            window_name=r._mapping["name"],
            alert_id=r._mapping["alert_id"],
            tenant_id=r._mapping["tenant_id"],
            send=r._mapping["send"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class HeldTrigger:
    tenant_id: UUID
    alert_id: UUID
    service_id: UUID
    routing_key_hash: str
    dedup_key: str
    api: str
    body: dict[str, Any]
    notes: tuple[str, ...]


async def held_triggers(db: Database, alert_ids: list[UUID]) -> list[HeldTrigger]:
    """The latest suppressed trigger of each still-open alert for each service it did not
    reach: what a window that sends at its end sends."""
    if not alert_ids:
        return []
    rows = await db.fetch_all(
        """
        SELECT DISTINCT ON (e.alert_id, e.service_id) e.tenant_id, e.alert_id, e.service_id,
            s.routing_key_hash, e.dedup_key, e.api, e.body, e.notes
        FROM events e
        JOIN alerts a ON a.id = e.alert_id
        JOIN pd_services s ON s.id = e.service_id
        WHERE e.alert_id = ANY(CAST(:alerts AS uuid[])) AND e.status = 'suppressed'
          AND e.kind = 'trigger' AND a.state <> 'resolved'
          AND NOT (e.service_id = ANY(a.service_ids))
        ORDER BY e.alert_id, e.service_id, e.seq DESC
        """,
        {"alerts": alert_ids},
    )
    return [
        HeldTrigger(
            tenant_id=r._mapping["tenant_id"],
            alert_id=r._mapping["alert_id"],
            service_id=r._mapping["service_id"],
            routing_key_hash=r._mapping["routing_key_hash"],
            dedup_key=r._mapping["dedup_key"],
            api=r._mapping["api"],
            body=_json(r._mapping["body"]),
            notes=tuple(r._mapping["notes"] or ()),
        )
        for r in rows
    ]
