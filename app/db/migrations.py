"""The migrations runner.

Migrations are numbered plain SQL files in `migrations/` (`0001_tenants.sql`, …), applied in
order, each once, each in its own transaction, on a raw asyncpg connection because `databases`
runs one statement per call. A session-level advisory lock makes concurrent start-ups (several
web and worker processes at once) take turns instead of racing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from databases import Database

from app.db.pool import asyncpg_dsn

# The folder sits beside app/ in the checkout (this file is app/db/migrations.py); see
# deploy/Dockerfile for why the image installs the checkout editable.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant will do; it only has to be the same in every pdconnect process.
MIGRATION_LOCK_ID = 7_143_260_118


class MigrationError(Exception):
    """The migrations folder is inconsistent (a gap, a duplicate, a bad name)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    # The folder sits beside app/ in the checkout; an install without it must not look
    # migrated.
    if not folder.is_dir():
        raise MigrationError(f"no migrations folder at {folder}: install from a checkout")
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: expected NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"{migration.path.name}: expected version {expected:04d}")
    return found


async def _ensure_schema_table(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


async def apply_migrations(url: str, folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration; return the ones applied now."""
    migrations = discover_migrations(folder)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await _ensure_schema_table(conn)
            done = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
            applied: list[Migration] = []
            for migration in migrations:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
                applied.append(migration)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()


async def pending_migrations(db: Database, folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    exists = await db.fetch_val("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done: set[int] = set()
    if exists:
        rows = await db.fetch_all("SELECT version FROM schema_migrations")
        done = {int(row._mapping["version"]) for row in rows}
    return [m for m in discover_migrations(folder) if m.version not in done]
