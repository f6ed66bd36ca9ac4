"""The ready keys: which (tenant, routing key) pairs have pending (queued or sending) events.

A claim starts from this small table instead of from every pending event, so what it reads
grows with the keys that have work, not with the backlog behind them (claims.py).

**The rule.** Whenever a key has a pending event, its row exists: every write that makes an
event pending (an enqueue, held → queued) or due (send_now, a retry, a release) calls
`keys_have_work` in the same transaction. A row may outlive its key's work for a while; a claim
looking at it then finds nothing and moves on, and `forget_idle_keys` removes it.

**Why removing a row cannot lose an enqueue.** The danger: a remover that checks "nothing
pending" cannot see an event inserted by a transaction not yet committed, deletes the row,
and that transaction then commits a queued event whose key has no row. Two locks close it:

- `keys_have_work` locks the key's existing row FOR KEY SHARE until its transaction ends (many
  enqueuers share it, so ingest of one key is never serialised), or inserts the row when there
  is none; should a concurrent enqueuer insert it first, ON CONFLICT DO UPDATE … WHERE false
  locks that row without writing it (PostgreSQL locks every conflicting row it considers).
- `forget_idle_keys` first locks the rows it may delete (FOR UPDATE SKIP LOCKED: a row an
  enqueuer holds is simply skipped, it is getting work anyway), then, in a second statement
  whose snapshot is taken after those locks were granted, deletes those with nothing pending.

So an enqueuer that locked the row first makes the remover skip it; one that comes after the
remover's lock waits for the remover's commit and then finds no row and inserts one; and an
event committed before the remover's second statement is seen by it. Each enqueue calls
`keys_have_work` after writing its events, so its events are in the table whenever its lock is.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from databases import Database

# After `wanted` (the pairs): lock the rows there are, insert the others. `KEYS_HAVE_WORK` takes
# the pairs as arrays; the statement that writes a batch at once (app/outbox/events.py) takes
# them from the events it has just written, which are then in the table whenever the lock is.
_KEPT = """
kept AS (
    -- Held until this transaction ends: no remover can take the row meanwhile.
    SELECT r.tenant_id, r.routing_key_hash FROM ready_keys r
    JOIN wanted w ON w.tenant_id = r.tenant_id AND w.routing_key_hash = r.routing_key_hash
    FOR KEY SHARE OF r
)"""
_INSERT_MISSING = """
INSERT INTO ready_keys (tenant_id, routing_key_hash)
SELECT w.tenant_id, w.routing_key_hash FROM wanted w
WHERE NOT EXISTS (
    SELECT 1 FROM kept k
    WHERE k.tenant_id = w.tenant_id AND k.routing_key_hash = w.routing_key_hash)
-- The same order in every transaction, so two enqueuers that both meet rows inserted under
-- them cannot wait for each other in a circle.
ORDER BY w.tenant_id, w.routing_key_hash
ON CONFLICT (tenant_id, routing_key_hash) DO UPDATE SET turn_at = ready_keys.turn_at WHERE false
"""

# Built from constants only, here and below.
KEYS_HAVE_WORK = f"""
WITH wanted AS (
    SELECT DISTINCT w.tenant_id, w.routing_key_hash
    FROM unnest(CAST(:tenants AS uuid[]), CAST(:keys AS text[])) AS w (tenant_id, routing_key_hash)
),
{_KEPT}
{_INSERT_MISSING}"""  # noqa: S608 - constants only


# `keys_have_work` as common table expressions of a statement whose CTE `written` returns the
# events it inserted (tenant_id, routing_key_hash, status): the keys of its queued ones.
KEYS_OF_WRITTEN = f"""
wanted AS (
    SELECT DISTINCT tenant_id, routing_key_hash FROM written
    WHERE status = 'queued' AND routing_key_hash IS NOT NULL
),
{_KEPT},
keyed AS ({_INSERT_MISSING})"""  # noqa: S608 - constants only


async def keys_have_work(db: Database, pairs: Iterable[tuple[UUID, str]]) -> None:
    """These (tenant, routing key hash) pairs have pending events: make sure claims see them.
    One statement for any number of pairs; call in the transaction that made them pending,
    after its events are written."""
    wanted = sorted(set(pairs))
    if not wanted:
        return
    await db.execute(
        KEYS_HAVE_WORK,
        {"tenants": [t for t, _ in wanted], "keys": [k for _, k in wanted]},
    )


# Nothing queued or sending for the pair (events_pending_keys answers from its index).
_IDLE = """
NOT EXISTS (
    SELECT 1 FROM events e
    WHERE e.tenant_id = r.tenant_id AND e.routing_key_hash = r.routing_key_hash
      AND e.status IN ('queued', 'sending'))
"""


async def forget_idle_keys(db: Database) -> int:
    """Remove the rows of keys with nothing pending; how many. Two statements in a transaction:
    lock, then check under a snapshot taken after the locks (see the module's docstring)."""
    async with db.transaction():
        rows = await db.fetch_all(
            f"SELECT r.tenant_id, r.routing_key_hash FROM ready_keys r WHERE {_IDLE} "  # noqa: S608
            "FOR UPDATE SKIP LOCKED"
        )
        if not rows:
            return 0
        gone = await db.fetch_all(
            f"""
            DELETE FROM ready_keys r
            USING unnest(CAST(:tenants AS uuid[]), CAST(:keys AS text[])) AS l (t, k)
            WHERE r.tenant_id = l.t AND r.routing_key_hash = l.k AND {_IDLE}
            RETURNING r.routing_key_hash
            """,  # noqa: S608 - only _IDLE, a constant
            {
                "tenants": [r._mapping["tenant_id"] for r in rows],
                "keys": [r._mapping["routing_key_hash"] for r in rows],
            },
        )
        return len(gone)


async def restore_lost_keys(db: Database) -> int:
    """Add the row of any key with pending events that has none; how many. Nothing in
    pdconnect loses one (see above): this is for events written by a process that predates
    the ready keys (a web process still running the previous release while a new worker
    starts). It reads every pending event's key, so dispatchers run it rarely."""
    added = await db.fetch_all(
        """
        INSERT INTO ready_keys (tenant_id, routing_key_hash)
        SELECT DISTINCT e.tenant_id, e.routing_key_hash FROM events e
        WHERE e.status IN ('queued', 'sending')
        ON CONFLICT DO NOTHING
        RETURNING routing_key_hash
        """
    )
    return len(added)
