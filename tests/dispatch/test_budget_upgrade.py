"""Upgrading a database whose keys have recent sends: the budget's slices carry them over from
either form version 20 took in released databases (counted per second, or already in slices
under earlier column names), so no key can send its budget twice across the upgrade."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import asyncpg
import pytest

from app.db.migrations import MIGRATIONS_DIR, apply_migrations
from app.db.pool import asyncpg_dsn
from tests.test_db import empty_database

__all__ = ["empty_database"]

BEFORE_SLICES = 19
# What the release that counted per second left in a database: version 20 recorded under its
# own name, its two columns, and no `sent_starts`.
PER_SECOND_RELEASE = """
ALTER TABLE dispatch_keys ADD COLUMN sent_seconds bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE dispatch_keys ADD COLUMN sent_counts integer[] NOT NULL DEFAULT '{}';
INSERT INTO schema_migrations (version, name) VALUES (20, 'budget_seconds');
"""


async def migrated_up_to(url: str, folder: Path, last: int) -> None:
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name.split("_", 1)[0]) <= last:
            shutil.copy(path, folder / path.name)
    await apply_migrations(url, folder)


async def slices(conn: asyncpg.Connection) -> tuple[list[int], list[int]]:
    row = await conn.fetchrow(
        "SELECT slice_starts, slice_counts FROM dispatch_keys WHERE routing_key_hash = 'k'"
    )
    assert row is not None
    return list(row["slice_starts"]), list(row["slice_counts"])


async def test_a_database_of_the_per_second_release_keeps_its_sends(
    empty_database: str, tmp_path: Path
) -> None:
    await migrated_up_to(empty_database, tmp_path, BEFORE_SLICES)
    now = int(time.time())
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        await conn.execute(PER_SECOND_RELEASE)
        await conn.execute(
            "INSERT INTO dispatch_keys (routing_key_hash, sent_seconds, sent_counts)"
            " VALUES ('k', $1, $2)",
            [now - 10, now - 5],
            [3, 4],
        )
        applied = [m.version for m in await apply_migrations(empty_database)]
        # Version 20 stays as that release recorded it; what reads the budget now is filled.
        assert 20 not in applied
        assert 21 in applied
        assert await slices(conn) == ([(now - 10) * 1000, (now - 5) * 1000], [3, 4])
    finally:
        await conn.close()


async def test_a_database_of_the_first_slices_release_keeps_its_sends(
    empty_database: str, tmp_path: Path
) -> None:
    await migrated_up_to(empty_database, tmp_path, 20)
    starts = [1_000, 1_968, 2_936]
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        await conn.execute(
            "INSERT INTO dispatch_keys (routing_key_hash, sent_starts, sent_counts)"
            " VALUES ('k', $1, $2)",
            starts,
            [5, 6, 7],
        )
        await apply_migrations(empty_database)
        assert await slices(conn) == (starts, [5, 6, 7])
    finally:
        await conn.close()


@pytest.mark.parametrize("release", ["per_second", "slices"])
async def test_the_carry_over_runs_twice_without_changing_what_it_wrote(
    empty_database: str, tmp_path: Path, release: str
) -> None:
    """Migrations are written to apply cleanly twice (their number may change as work lands)."""
    await migrated_up_to(empty_database, tmp_path, BEFORE_SLICES if release == "per_second" else 20)
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        if release == "per_second":
            await conn.execute(PER_SECOND_RELEASE)
            await conn.execute(
                "INSERT INTO dispatch_keys (routing_key_hash, sent_seconds, sent_counts)"
                " VALUES ('k', '{7}', '{2}')"
            )
        else:
            await conn.execute(
                "INSERT INTO dispatch_keys (routing_key_hash, sent_starts, sent_counts)"
                " VALUES ('k', '{7000}', '{2}')"
            )
        await apply_migrations(empty_database)
        # A spend since the upgrade: the new columns are this version's, not to be overwritten.
        await conn.execute(
            "UPDATE dispatch_keys SET slice_starts = '{7000, 8000}', slice_counts = '{2, 1}'"
        )
        await conn.execute((MIGRATIONS_DIR / "0021_budget_slice_columns.sql").read_text())
        assert await slices(conn) == ([7000, 8000], [2, 1])
    finally:
        await conn.close()
