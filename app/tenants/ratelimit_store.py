"""SQL of the ingest rate limit: find a live key and spend from its budget in one statement."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

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
