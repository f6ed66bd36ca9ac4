"""Where secrets are stored encrypted, read a page at a time and rewritten compare-and-set.

Every `*_enc` column of the schema is listed in `ENCRYPTED_COLUMNS` (a test holds the list to
the database's columns, so a new one cannot be forgotten). Table and column names are the only
text interpolated into the SQL here, and only from that fixed list.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from databases import Database


@dataclass(frozen=True)
class EncryptedColumn:
    table: str
    column: str

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


# Every table here has a uuid primary key `id`, which orders the pages.
ENCRYPTED_COLUMNS = (
    EncryptedColumn("installations", "access_token_enc"),
    EncryptedColumn("installations", "refresh_token_enc"),
    EncryptedColumn("pd_services", "routing_key_enc"),
    EncryptedColumn("webhook_subscriptions", "secret_enc"),
    EncryptedColumn("tenant_callbacks", "secret_enc"),
    EncryptedColumn("tenant_callbacks", "previous_secret_enc"),
)


@dataclass(frozen=True)
class Stored:
    id: UUID
    ciphertext: str


async def page(
    db: Database, where: EncryptedColumn, *, after: UUID | None, limit: int
) -> list[Stored]:
    """The next `limit` stored values by id (NULLs, erased secrets, skipped)."""
    after_clause = "" if after is None else "AND id > :after"
    params: dict[str, object] = {"limit": limit}
    if after is not None:
        params["after"] = after
    rows = await db.fetch_all(
        f"""
        SELECT id, {where.column} AS ciphertext FROM {where.table}
        WHERE {where.column} IS NOT NULL {after_clause}
        ORDER BY id LIMIT :limit
        """,
        params,
    )
    return [Stored(id=r._mapping["id"], ciphertext=r._mapping["ciphertext"]) for r in rows]


async def swap(db: Database, where: EncryptedColumn, *, row_id: UUID, old: str, new: str) -> bool:
    """Replace the value only if it is still `old`: a secret the application rewrote
    meanwhile (a token refresh, a re-key) is newer than our copy and must win."""
    swapped = await db.fetch_val(
        f"""
        UPDATE {where.table} SET {where.column} = :new
        WHERE id = :id AND {where.column} = :old
        RETURNING id
        """,
        {"id": row_id, "old": old, "new": new},
    )
    return swapped is not None


async def current(db: Database, where: EncryptedColumn, row_id: UUID) -> str | None:
    value = await db.fetch_val(
        f"SELECT {where.column} FROM {where.table} WHERE id = :id",
        {"id": row_id},
    )
    return value if isinstance(value, str) else None
