"""SQL of the ingest rate limit: find a live key and spend from its budget in one statement."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from uuid import UUID

from databases import Database

from app.tenants.store import FIND_AND_STAMP_KEY, IngestKey

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
