"""SQL for tenants, ingest keys, sign-in links and the audit log."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from databases import Database
from databases.interfaces import Record


@dataclass(frozen=True)
class Tenant:
    id: UUID
    name: str
    external_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class IngestKey:
    id: UUID
    tenant_id: UUID
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    actor: str
    action: str
    detail: Mapping[str, Any]
    created_at: datetime


def _tenant(row: Record) -> Tenant:
    m = row._mapping
    return Tenant(
        id=m["id"], name=m["name"], external_id=m["external_id"], created_at=m["created_at"]
    )


def _ingest_key(row: Record) -> IngestKey:
    m = row._mapping
    return IngestKey(
        id=m["id"],
        tenant_id=m["tenant_id"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


def _audit(row: Record) -> AuditEntry:
    m = row._mapping
    detail = m["detail"]
    return AuditEntry(
        id=m["id"],
        actor=m["actor"],
        action=m["action"],
        detail=json.loads(detail) if isinstance(detail, str) else detail,
        created_at=m["created_at"],
    )


TENANT_COLUMNS = "id, name, external_id, created_at"
KEY_COLUMNS = "id, tenant_id, prefix, created_at, last_used_at, revoked_at"


async def tenant_by_external_id(db: Database, external_id: str) -> Tenant | None:
    row = await db.fetch_one(
        f"SELECT {TENANT_COLUMNS} FROM tenants WHERE external_id = :external_id",
        {"external_id": external_id},
    )
    return None if row is None else _tenant(row)


async def insert_tenant(db: Database, *, name: str, external_id: str | None) -> Tenant | None:
    """None when the external id is taken."""
    row = await db.fetch_one(
        f"""
        INSERT INTO tenants (name, external_id) VALUES (:name, :external_id)
        ON CONFLICT (external_id) DO NOTHING
        RETURNING {TENANT_COLUMNS}
        """,
        {"name": name, "external_id": external_id},
    )
    return None if row is None else _tenant(row)


async def get_tenant(db: Database, tenant_id: UUID) -> Tenant | None:
    row = await db.fetch_one(
        f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = :id", {"id": tenant_id}
    )
    return None if row is None else _tenant(row)


async def list_tenants(db: Database, *, limit: int, after: UUID | None) -> list[Tenant]:
    rows = await db.fetch_all(
        f"""
        SELECT {TENANT_COLUMNS} FROM tenants
        WHERE CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid)
        ORDER BY id LIMIT :limit
        """,
        {"after": after, "limit": limit},
    )
    return [_tenant(row) for row in rows]


async def delete_tenant(db: Database, tenant_id: UUID) -> bool:
    deleted = await db.fetch_val(
        "DELETE FROM tenants WHERE id = :id RETURNING id", {"id": tenant_id}
    )
    return deleted is not None


async def insert_ingest_key(
    db: Database, *, tenant_id: UUID, prefix: str, key_hash: str
) -> IngestKey:
    row = await db.fetch_one(
        f"""
        INSERT INTO ingest_keys (tenant_id, prefix, key_hash)
        VALUES (:tenant_id, :prefix, :key_hash)
        RETURNING {KEY_COLUMNS}
        """,
        {"tenant_id": tenant_id, "prefix": prefix, "key_hash": key_hash},
    )
    assert row is not None
    return _ingest_key(row)


async def list_ingest_keys(db: Database, tenant_id: UUID) -> list[IngestKey]:
    rows = await db.fetch_all(
        f"SELECT {KEY_COLUMNS} FROM ingest_keys WHERE tenant_id = :tenant_id ORDER BY created_at",
        {"tenant_id": tenant_id},
    )
    return [_ingest_key(row) for row in rows]


async def revoke_ingest_key(db: Database, *, tenant_id: UUID, key_id: UUID) -> IngestKey | None:
    row = await db.fetch_one(
        f"""
        UPDATE ingest_keys SET revoked_at = COALESCE(revoked_at, now())
        WHERE id = :id AND tenant_id = :tenant_id
        RETURNING {KEY_COLUMNS}
        """,
        {"id": key_id, "tenant_id": tenant_id},
    )
    return None if row is None else _ingest_key(row)


# Stamping every use would write the key's row on every alert; once a minute says the same.
LAST_USED_RESOLUTION = "1 minute"


# `found`: the live key with the hash :key_hash; `stamped`: its last use recorded. The start of
# a WITH for every statement that authenticates an ingest key.
FIND_AND_STAMP_KEY = f"""
    found AS (
        SELECT {KEY_COLUMNS} FROM ingest_keys
        WHERE key_hash = :key_hash AND revoked_at IS NULL
    ), stamped AS (
        UPDATE ingest_keys SET last_used_at = now()
        WHERE id IN (
            SELECT id FROM found
            WHERE last_used_at IS NULL
               OR last_used_at < now() - INTERVAL '{LAST_USED_RESOLUTION}')
    )
"""


async def find_ingest_key(db: Database, key_hash: str) -> IngestKey | None:
    """The live key with this hash; its last use is stamped at most once a minute."""
    row = await db.fetch_one(
        f"WITH {FIND_AND_STAMP_KEY} SELECT {KEY_COLUMNS} FROM found", {"key_hash": key_hash}
    )
    return None if row is None else _ingest_key(row)


async def rehash_ingest_key(db: Database, *, old_hash: str, new_hash: str) -> bool:
    """Move a live key from a hash under the previous SECRET_KEY to one under the current;
    compare-and-set on the old hash, so two requests racing to do it change the row once."""
    moved = await db.fetch_val(
        """
        UPDATE ingest_keys SET key_hash = :new_hash
        WHERE key_hash = :old_hash AND revoked_at IS NULL
        RETURNING id
        """,
        {"old_hash": old_hash, "new_hash": new_hash},
    )
    return moved is not None


async def insert_login_link(db: Database, *, tenant_id: UUID, expires_at: datetime) -> UUID:
    link_id = await db.fetch_val(
        """
        INSERT INTO login_links (tenant_id, expires_at) VALUES (:tenant_id, :expires_at)
        RETURNING id
        """,
        {"tenant_id": tenant_id, "expires_at": expires_at},
    )
    assert isinstance(link_id, UUID)
    return link_id


async def use_login_link(db: Database, *, link_id: UUID, now: datetime) -> UUID | None:
    """Mark the link used and return its tenant, or None if unknown, used or expired."""
    tenant_id = await db.fetch_val(
        """
        UPDATE login_links SET used_at = :now
        WHERE id = :id AND used_at IS NULL AND expires_at > :now
        RETURNING tenant_id
        """,
        {"id": link_id, "now": now},
    )
    return tenant_id if isinstance(tenant_id, UUID) else None


async def insert_audit(
    db: Database, *, tenant_id: UUID, actor: str, action: str, detail: Mapping[str, Any]
) -> None:
    await db.execute(
        """
        INSERT INTO audit_log (tenant_id, actor, action, detail)
        VALUES (:tenant_id, :actor, :action, CAST(:detail AS jsonb))
        """,
        {"tenant_id": tenant_id, "actor": actor, "action": action, "detail": json.dumps(detail)},
    )


async def list_audit(db: Database, tenant_id: UUID, *, limit: int = 50) -> list[AuditEntry]:
    rows = await db.fetch_all(
        """
        SELECT id, actor, action, detail, created_at FROM audit_log
        WHERE tenant_id = :tenant_id ORDER BY created_at DESC, id DESC LIMIT :limit
        """,
        {"tenant_id": tenant_id, "limit": limit},
    )
    return [_audit(row) for row in rows]
