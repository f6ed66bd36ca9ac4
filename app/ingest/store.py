"""SQL for what ingest needs to route an alert: the tenant's services, rules and severities."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
        SELECT id, position, name, conditions, service_ids FROM routes
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
        )
        for r in rows
    ]


async def replace_rules(
    db: Database, tenant_id: UUID, rules: list[tuple[str, list[dict[str, Any]], tuple[UUID, ...]]]
) -> None:
    """The tenant's whole ordered rule list, replaced in one go (call in a transaction)."""
    await db.execute("DELETE FROM routes WHERE tenant_id = :tenant_id", {"tenant_id": tenant_id})
    for position, (name, conditions, service_ids) in enumerate(rules):
        await db.execute(
            """
            INSERT INTO routes (tenant_id, position, name, conditions, service_ids)
            VALUES (:tenant_id, :position, :name, CAST(:conditions AS jsonb), :service_ids)
            """,
            {
                "tenant_id": tenant_id,
                "position": position,
                "name": name,
                "conditions": json.dumps(conditions),
                "service_ids": list(service_ids),
            },
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
