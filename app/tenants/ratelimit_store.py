"""SQL of the ingest rate limit: find a live key and spend from its budget in one statement;
or, for a process that keeps budgets in memory, add what it spent to the shared budgets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from uuid import UUID

from databases import Database

from app.tenants.store import FIND_AND_STAMP_KEY, LAST_USED_RESOLUTION, IngestKey

_KEY_FIELDS = tuple(f.name for f in fields(IngestKey))


@dataclass(frozen=True)
class Spent:
    allowed: bool
    # The key's theoretical arrival time after this request (unchanged when refused).
    tat: datetime


# The key lookup and its last-used stamp are the store's (FIND_AND_STAMP_KEY); the budget is
# spent under the row lock that INSERT … ON CONFLICT takes, so concurrent requests of one key,
# from any process, queue on that row and each sees the others' spending. Only module
# constants are interpolated.
_FIND_AND_SPEND = f"""
WITH {FIND_AND_STAMP_KEY}, spent AS (
    INSERT INTO ingest_key_budgets AS b (key_id, tat, last_allowed)
    SELECT id, CAST(:now AS timestamptz) + CAST(:interval AS interval), true FROM found
    ON CONFLICT (key_id) DO UPDATE SET
        last_allowed = b.tat <= CAST(:now AS timestamptz) + CAST(:tolerance AS interval),
        tat = CASE
            WHEN b.tat <= CAST(:now AS timestamptz) + CAST(:tolerance AS interval)
            THEN GREATEST(b.tat, CAST(:now AS timestamptz)) + CAST(:interval AS interval)
            ELSE b.tat
        END
    RETURNING tat, last_allowed
)
SELECT found.*, spent.tat AS budget_tat, spent.last_allowed FROM found, spent
"""  # noqa: S608


async def find_and_spend(
    db: Database, key_hash: str, *, now: datetime, interval: timedelta, tolerance: timedelta
) -> tuple[IngestKey, Spent] | None:
    """The live key with this hash and whether this request fits its budget; None when there
    is no such key (and then nothing is spent)."""
    row = await db.fetch_one(
        _FIND_AND_SPEND,
        {"key_hash": key_hash, "now": now, "interval": interval, "tolerance": tolerance},
    )
    if row is None:
        return None
    m = row._mapping
    key = IngestKey(**{name: m[name] for name in _KEY_FIELDS})
    return key, Spent(allowed=m["last_allowed"], tat=m["budget_tat"])


# After the key check made the row: take `cost` more at once, if the budget has room for it.
# The refused case reads the row as it stands (for Retry-After) in the same statement.
_SPEND_MORE = """
WITH spent AS (
    UPDATE ingest_key_budgets
    SET tat = GREATEST(tat, CAST(:now AS timestamptz)) + CAST(:cost AS interval)
    WHERE key_id = :key_id
      AND GREATEST(tat, CAST(:now AS timestamptz))
          <= CAST(:now AS timestamptz) + CAST(:fits AS interval)
    RETURNING tat
)
SELECT (SELECT tat FROM spent) AS spent_tat,
       (SELECT tat FROM ingest_key_budgets WHERE key_id = :key_id) AS current_tat
"""


async def spend_more(
    db: Database, key_id: UUID, *, now: datetime, cost: timedelta, fits: timedelta
) -> Spent:
    """Move the key's tat `cost` forward when it lies within `fits` of now; else spend nothing
    and say where it stands."""
    row = await db.fetch_one(
        _SPEND_MORE, {"key_id": key_id, "now": now, "cost": cost, "fits": fits}
    )
    assert row is not None
    m = row._mapping
    if m["spent_tat"] is not None:
        return Spent(allowed=True, tat=m["spent_tat"])
    # No row at all only if the key was deleted meanwhile: then nothing is owed either.
    return Spent(allowed=m["current_tat"] is None, tat=m["current_tat"] or now)


# A process's spending since its last sync, for every key it used, added to the shared tat in
# one statement (app/tenants/ratelimit.py, LocalBudgets), which answers with each key's tat as
# every process's syncs have left it. A key deleted meanwhile is skipped (the join), so its
# spending is forgotten with it. Rows are upserted in key order: two processes syncing the same
# keys lock them in the same order and never deadlock. The keys' last use is stamped here too,
# since a process that authenticates from memory no longer touches the key's row. The arrays
# are read through scalar subqueries so that PostgreSQL keeps one plan for the statement
# (app/alerts/store.py `latest_lives` says why): planned for its values, each sync cost
# 0.2-0.4 ms of planning, ten times a second in every busy process.
_SYNC = f"""
WITH spent AS (
    SELECT * FROM unnest(
        (SELECT CAST(:key_ids AS uuid[])), (SELECT CAST(:seconds AS float8[])),
        (SELECT CAST(:limited AS boolean[]))
    ) AS s(key_id, seconds, limited)
), synced AS (
    INSERT INTO ingest_key_budgets AS b (key_id, tat, last_allowed)
    SELECT s.key_id, CAST(:now AS timestamptz) + make_interval(secs => s.seconds), true
    FROM spent AS s JOIN ingest_keys AS k ON k.id = s.key_id
    WHERE s.limited
    ORDER BY s.key_id
    ON CONFLICT (key_id) DO UPDATE SET
        tat = GREATEST(b.tat, CAST(:now AS timestamptz))
              + (EXCLUDED.tat - CAST(:now AS timestamptz))
    RETURNING key_id, tat
), stamped AS (
    UPDATE ingest_keys SET last_used_at = now()
    WHERE id IN (SELECT key_id FROM spent)
      AND (last_used_at IS NULL OR last_used_at < now() - INTERVAL '{LAST_USED_RESOLUTION}')
)
SELECT key_id, tat FROM synced
"""  # noqa: S608


async def sync_budgets(
    db: Database, spent: Sequence[tuple[UUID, timedelta, bool]], *, now: datetime
) -> dict[UUID, datetime]:
    """Add each (key, spent, limited) to the key's shared tat (limited keys only; every key's
    last use is stamped); the shared tat of each limited key afterwards."""
    rows = await db.fetch_all(
        _SYNC,
        {
            "key_ids": [key_id for key_id, _, _ in spent],
            "seconds": [cost.total_seconds() for _, cost, _ in spent],
            "limited": [limited for _, _, limited in spent],
            "now": now,
        },
    )
    return {row._mapping["key_id"]: row._mapping["tat"] for row in rows}
