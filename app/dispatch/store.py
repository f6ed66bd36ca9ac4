"""SQL of the dispatcher's own tables: each routing key's budget, pauses and counters
(`dispatch_keys`), and the delivery attempts. An event's status is the outbox's (app/outbox);
the writes here that sit beside an outcome run in the sender's fenced transaction.

**Isolated.** A claim (app/outbox/claims.py) skips keys that have `max_in_flight_per_key` sends
with a live lease (counted over all workers, from a small index of `sending` events) and takes
at most the room left of the others; it skips keys of a PagerDuty host (`dispatch_keys.host`)
the claiming worker has no room for, and gives each host no more of the claim than its room.
The cap per key is exact across workers where it matters: an attempt is opened only by the one
UPDATE of the key's row that counts its open sends and spends one (`reserve_budget`).

**Budget without a lock held across statements.** The key's row carries its recent sends,
counted in slices of the budget window (`slice_starts`, `slice_counts`: when each slice that saw
sends began, in Unix milliseconds, and how many; a slice is 1/64 of the window), and its sends
waiting for an answer (`open_sends`). Spending is one conditional UPDATE of that row, which also
counts the attempt on the event and opens it (a CTE), so the row is locked only for that
statement. Finishing an attempt takes its send off `open_sends` in the statement that records
the answer; one whose worker died drops out when its lease is over. The arrays stay small
whatever the budget: 65 slices at most, and the cap of sends in flight.

A send is counted as if made when its slice began: it stays in the window for between one slice
less than the window and the window (61 to 62 s by default), always longer than PagerDuty's
60, so no 60 seconds ever hold more than the budget.

Times are the database's (`clock_timestamp()`), so workers on several machines agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from databases import Database

from app.outbox.claims import FENCE, Claimed, release
from app.outbox.outcomes import Beside
from app.outbox.states import ServiceHealth


@dataclass(frozen=True)
class Target:
    """Where and how a service's events go; the key is still encrypted."""

    routing_key_enc: str
    events_url: str
    api_version: str
    rate_limit_per_minute: int
    health: ServiceHealth


async def target_of(db: Database, service_id: UUID) -> Target | None:
    return (await targets_of(db, [service_id])).get(service_id)


async def targets_of(db: Database, service_ids: Sequence[UUID]) -> dict[UUID, Target]:
    """The services' targets, one statement for any number; a service that is gone is left
    out."""
    rows = await db.fetch_all(
        """
        SELECT s.id, s.routing_key_enc, i.events_url, s.api_version, s.rate_limit_per_minute,
            s.health
        FROM pd_services s JOIN installations i ON i.id = s.installation_id
        WHERE s.id = ANY(CAST(:ids AS uuid[]))
        """,
        {"ids": list(service_ids)},
    )
    return {
        r["id"]: Target(
            routing_key_enc=r["routing_key_enc"],
            events_url=r["events_url"],
            api_version=r["api_version"],
            rate_limit_per_minute=r["rate_limit_per_minute"],
            health=ServiceHealth(r["health"]),
        )
        for r in rows
    }


# Why reserve_budget opened no attempt: the key's budget is spent (the key now rests), the key
# has its cap of sends in flight (counted across every worker), the lease was lost, or the
# service is no longer healthy or no longer there (the event goes back to be claimed again, and
# the next claim sees what became of its service).
Refusal = Literal["budget_spent", "key_busy", "lease_lost", "target_changed"]

# The budget window is counted in this many slices (see the module docstring).
SLICES = 64
# The instant of the statement, the slice it falls in (when that slice began, in Unix
# milliseconds), and how far back a slice must have begun to be counted still.
_NOW = """now AS MATERIALIZED (
    SELECT t, floor(extract(epoch FROM t) * 1000 / :slice)::bigint * :slice AS slice,
        extract(epoch FROM t - CAST(:window AS interval)) * 1000 AS since
    FROM (SELECT clock_timestamp() AS t) AS c
)"""
# The key's sends in the budget window, and its sends still waiting for an answer (one whose
# lease is over was time-boxed below it: it is over, whatever its worker recorded). Read from
# the key's row itself, so that the UPDATE holding the row's lock reads them as the previous
# holder left them: PostgreSQL re-evaluates an UPDATE's conditions on the newest version of a
# row it waited for, but subqueries over other tables only under the statement's snapshot.
_SLICES = "unnest(k.slice_starts, k.slice_counts) AS b (start, n)"
_IN_WINDOW = f"(SELECT COALESCE(sum(b.n), 0) FROM {_SLICES} WHERE b.start > now.since)"
_OPEN = (
    "(SELECT count(*) FROM unnest(k.open_sends) AS o WHERE o > now.t - CAST(:lease AS interval))"
)
_FENCED = f"EXISTS (SELECT 1 FROM events WHERE id = :id AND {FENCE})"

# One statement: for each event given (at most one per key), spend one of its key's sends and
# open the attempt, or do nothing for it. The row lock each key's UPDATE takes lasts only for
# this statement, and serialises the key's spends across every worker, so the budget and the
# cap on sends in flight are exact however many workers claim. The services are read here too,
# as they are now: nothing is spent for a service that stopped being healthy, and the send goes
# with the key and the URL of this instant. Concurrent sends of a worker share one such
# statement (app/db/group.py's Batcher), so a send's slot waits for one round trip, not for its
# own in a queue. Its arrays, like the record of deliveries', are read through scalar
# subqueries: PostgreSQL then keeps one plan for it (app/alerts/store.py `latest_lives`).
SPEND = f"""
WITH {_NOW},
wanted AS MATERIALIZED (
    SELECT * FROM unnest((SELECT CAST(:ids AS uuid[])), (SELECT CAST(:tokens AS bigint[])),
        (SELECT CAST(:hashes AS text[])), (SELECT CAST(:services AS uuid[])))
        AS w (id, token, h, service_id)
),
target AS MATERIALIZED (
    SELECT w.id, s.routing_key_enc, s.rate_limit_per_minute, i.events_url
    FROM wanted w
    JOIN pd_services s ON s.id = w.service_id
    JOIN installations i ON i.id = s.installation_id
    WHERE s.health = 'healthy'
),
locked AS MATERIALIZED (
    -- The keys' rows locked in key order, as the record of deliveries locks them too
    -- (_DELIVERED_BESIDE): two statements sharing keys wait for each other, never in a circle.
    SELECT k.routing_key_hash FROM dispatch_keys k
    WHERE k.routing_key_hash IN (SELECT h FROM wanted)
    ORDER BY k.routing_key_hash
    FOR NO KEY UPDATE
),
spent AS (
    UPDATE dispatch_keys k SET
        -- The slices still in the window, this one counted once more (or added).
        (slice_starts, slice_counts) = (
            SELECT array_agg(c.start ORDER BY c.start), array_agg(c.n ORDER BY c.start)
            FROM (
                SELECT b.start, b.n + (b.start = now.slice)::integer AS n
                FROM {_SLICES} WHERE b.start > now.since
                UNION ALL SELECT now.slice, 1 WHERE now.slice <> ALL(k.slice_starts)
            ) AS c),
        open_sends = ARRAY(
            SELECT o FROM unnest(k.open_sends) AS o WHERE o > now.t - CAST(:lease AS interval)
            UNION ALL SELECT now.t ORDER BY 1)
    FROM now, wanted w JOIN target ON target.id = w.id
    WHERE k.routing_key_hash = w.h
      AND k.routing_key_hash IN (SELECT routing_key_hash FROM locked)
      AND {_IN_WINDOW} < target.rate_limit_per_minute
      AND {_OPEN} < :max_in_flight
      AND EXISTS (
        SELECT 1 FROM events e WHERE e.id = w.id AND e.status = 'sending'
          AND e.lease_token = w.token)
    RETURNING w.id, w.token, w.h, now.t
),
counted AS (
    UPDATE events e SET attempts = e.attempts + 1
    FROM spent
    WHERE e.id = spent.id AND e.status = 'sending' AND e.lease_token = spent.token
    RETURNING e.id
),
abandoned AS (
    -- An attempt left open under an earlier lease: its worker died, or is still waiting for
    -- an answer it can no longer act on. One whose sender is recording it right now (its row
    -- locked) is skipped: that sender writes its own outcome.
    UPDATE delivery_attempts SET outcome = 'abandoned', finished_at = clock_timestamp(),
        error = 'its lease ran out before PagerDuty answered; another attempt took over'
    WHERE id IN (
        SELECT a.id FROM delivery_attempts a JOIN counted c ON c.id = a.event_id
        WHERE a.finished_at IS NULL
        FOR UPDATE OF a SKIP LOCKED
    )
),
opened AS (
    INSERT INTO delivery_attempts (event_id, routing_key_hash, lease_token, started_at)
    SELECT spent.id, spent.h, spent.token, spent.t FROM spent JOIN counted ON counted.id = spent.id
    RETURNING id, event_id
)
SELECT w.id AS event_id, opened.id AS attempt_id, spent.t AS spent_at,
    target.routing_key_enc, target.events_url, target.rate_limit_per_minute
FROM wanted w
LEFT JOIN target ON target.id = w.id
LEFT JOIN spent ON spent.id = w.id
LEFT JOIN opened ON opened.event_id = w.id
"""


# Why SPEND did nothing, under the key's row lock; a spent budget pauses the key until the
# send that makes it full leaves the window.
REFUSE = f"""
WITH {_NOW}
UPDATE dispatch_keys k SET
    paused_until = CASE WHEN {_IN_WINDOW} >= :limit
        -- The slice that holds the limit-th newest send: the budget has room again once that
        -- slice has left the window.
        THEN GREATEST(k.paused_until, (
            SELECT to_timestamp(c.start / 1000.0) FROM (
                SELECT b.start, sum(b.n) OVER (ORDER BY b.start DESC) AS newer
                FROM {_SLICES} WHERE b.start > now.since
            ) AS c
            WHERE c.newer >= :limit ORDER BY c.start DESC LIMIT 1
        ) + CAST(:window AS interval))
        ELSE k.paused_until END,
    pause_reason = CASE WHEN {_IN_WINDOW} >= :limit AND k.paused_until <= now.t
        THEN :reason ELSE k.pause_reason END
FROM now
WHERE k.routing_key_hash = :h
RETURNING {_IN_WINDOW} >= :limit AS spent, {_OPEN} >= :max_in_flight AS busy,
    {_FENCED} AS fenced
"""


@dataclass(frozen=True)
class Attempt:
    """An opened attempt: its id; the instant its send was counted at (which the outcome hands
    back, to take the send off the key's sends in flight); and where it goes, as the service
    stood when the send was spent (the key still encrypted)."""

    id: int
    spent_at: datetime
    routing_key_enc: str
    events_url: str


@dataclass(frozen=True)
class Spend:
    """What SPEND did for one event: the attempt it opened (None: none), the instant it spent
    at (None: nothing spent), and the service as it stands (None: no longer healthy or there)."""

    attempt_id: int | None
    spent_at: datetime | None
    routing_key_enc: str | None
    events_url: str | None
    rate_limit_per_minute: int | None


def slice_ms(window: timedelta) -> int:
    """How long one slice of the budget window lasts, in milliseconds."""
    return max(1, int(window.total_seconds() * 1000) // SLICES)


async def spend_many(
    db: Database,
    claimed: Sequence[Claimed],
    *,
    window: timedelta,
    max_in_flight: int,
    lease: timedelta,
) -> list[Spend]:
    """SPEND for many events, one statement for each round of distinct keys (an UPDATE changes
    a row once: a second event of a key waits for the next round, which sees the first's)."""
    done: dict[int, Spend] = {}
    # In key order: two workers' batches then most often lock their common keys in the same
    # order (a deadlock between them costs a retry one by one, app/db/group.py).
    left = sorted(enumerate(claimed), key=lambda nc: nc[1].routing_key_hash)
    while left:
        seen: set[str] = set()
        now: list[tuple[int, Claimed]] = []
        later: list[tuple[int, Claimed]] = []
        for n, c in left:
            (later if c.routing_key_hash in seen else now).append((n, c))
            seen.add(c.routing_key_hash)
        rows = await db.fetch_all(
            SPEND,
            {
                "ids": [c.id for _, c in now],
                "tokens": [c.lease_token for _, c in now],
                "hashes": [c.routing_key_hash for _, c in now],
                "services": [c.service_id for _, c in now],
                "window": window,
                "slice": slice_ms(window),
                "max_in_flight": max_in_flight,
                "lease": lease,
            },
        )
        by_event = {r["event_id"]: r for r in rows}
        for n, c in now:
            found = by_event[c.id]
            done[n] = Spend(
                found["attempt_id"],
                found["spent_at"],
                found["routing_key_enc"],
                found["events_url"],
                found["rate_limit_per_minute"],
            )
        left = later
    return [done[n] for n in range(len(claimed))]


async def reserve_budget(
    db: Database,
    claimed: Claimed,
    *,
    host: str,
    window: timedelta,
    max_in_flight: int,
    lease: timedelta,
    spent: Spend | None = None,
) -> Attempt | Refusal:
    """Spend one of the key's sends in the window (its service's budget) and open an attempt,
    or say why not. When not, the event goes back to the queue untouched; a spent budget also
    pauses the key until a send leaves the window. One statement when the send is spent;
    `spent`: that statement's answer when it was run already (in a batch, spend_many)."""
    h = claimed.routing_key_hash
    params = {
        "h": h,
        "id": claimed.id,
        "token": claimed.lease_token,
        "window": window,
        "slice": slice_ms(window),
        "max_in_flight": max_in_flight,
        "lease": lease,
    }
    for _ in range(3):
        if spent is None:
            [spent] = await spend_many(
                db, [claimed], window=window, max_in_flight=max_in_flight, lease=lease
            )
        found, spent = spent, None
        if found.attempt_id is not None:
            assert found.spent_at is not None
            assert found.routing_key_enc is not None
            assert found.events_url is not None
            return Attempt(
                found.attempt_id, found.spent_at, found.routing_key_enc, found.events_url
            )
        if found.spent_at is not None:
            # Spent, but the event was taken over between the two: the send never happens,
            # and its place among the sends in flight goes with the lease.
            return "lease_lost"
        limit = found.rate_limit_per_minute
        if limit is None:
            await release(db, claimed)
            return "target_changed"
        why = await db.fetch_one(
            REFUSE,
            {
                **params,
                "limit": limit,
                "reason": f"waiting: its routing key has spent its budget of {limit} "
                f"events in {window.total_seconds():g} seconds",
            },
        )
        if why is None:
            # The key has no row yet: the dispatcher learns its host first.
            await learn_host(db, h, host)
            continue
        if not why._mapping["fenced"]:
            return "lease_lost"
        if why._mapping["spent"]:
            await release(db, claimed)
            return "budget_spent"
        if why._mapping["busy"]:
            await release(db, claimed)
            return "key_busy"
        # A send of the key finished between the two statements: try again.
    await release(db, claimed)
    return "key_busy"


async def learn_host(db: Database, routing_key_hash: str, host: str) -> None:
    """Where the key's events go, so that claims can skip the key while its host is full."""
    await learn_hosts(db, {routing_key_hash: host})


async def learn_hosts(db: Database, hosts: Mapping[str, str]) -> None:
    """learn_host for many keys in one statement, their rows locked in key order as SPEND
    locks them."""
    if not hosts:
        return
    ordered = sorted(hosts.items())
    await db.execute(
        """
        INSERT INTO dispatch_keys (routing_key_hash, host)
        SELECT h, host FROM unnest(CAST(:hashes AS text[]), CAST(:hosts AS text[])) AS l (h, host)
        ORDER BY h
        ON CONFLICT (routing_key_hash) DO UPDATE SET host = EXCLUDED.host
        WHERE dispatch_keys.host IS DISTINCT FROM EXCLUDED.host
        """,
        {"hashes": [h for h, _ in ordered], "hosts": [host for _, host in ordered]},
    )


async def finish_attempt(
    db: Database,
    attempt: Attempt,
    routing_key_hash: str,
    *,
    outcome: str,
    http_status: int | None,
    latency_ms: int,
    response: Mapping[str, Any] | None,
    error: str | None,
) -> None:
    """Record the attempt's answer and take its send off the key's sends in flight."""
    await db.execute(
        f"""
        WITH {_FINISH}
        UPDATE dispatch_keys SET open_sends = array_remove(open_sends, :spent_at)
        WHERE routing_key_hash = :h
        """,
        _finish_params(attempt, routing_key_hash, outcome, http_status, latency_ms, response)
        | {"error": error},
    )


_FINISH = """
attempt AS (
    UPDATE delivery_attempts SET finished_at = clock_timestamp(), outcome = :outcome,
        http_status = :status, latency_ms = :latency,
        response = CAST(:response AS jsonb), error = :error
    WHERE id = :id
)
"""


def _finish_params(
    attempt: Attempt,
    routing_key_hash: str,
    outcome: str,
    http_status: int | None,
    latency_ms: int,
    response: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "spent_at": attempt.spent_at,
        "h": routing_key_hash,
        "outcome": outcome,
        "status": http_status,
        "latency": latency_ms,
        "response": None if response is None else json.dumps(response),
    }


@dataclass(frozen=True)
class Delivery:
    """An attempt PagerDuty accepted, as `delivered_beside` records it. `retry_others`: a
    retry got through, so the key's other events waiting out a retry backoff are due now."""

    event_id: UUID
    attempt: Attempt
    routing_key_hash: str
    outcome: str
    http_status: int | None
    latency_ms: int
    response: Mapping[str, Any] | None
    retry_others: bool


# What deliveries write besides their events' status, in the same statement: each attempt's
# answer (with `stale_error` when its fence did not hold); the sends off their keys' sends in
# flight; for a key with a current delivery, whatever made it back off, refuse or time out is
# over; and a key whose retry got through has its other retries due now (see retry_key_now).
# Grouped per key: an UPDATE changes a row once per statement.
_DELIVERED_BESIDE = """
done AS MATERIALIZED (
    SELECT d.*, d.event_id IN (SELECT id FROM delivered) AS current
    FROM unnest((SELECT CAST(:d_events AS uuid[])), (SELECT CAST(:d_attempts AS bigint[])),
        (SELECT CAST(:d_hashes AS text[])), (SELECT CAST(:d_spent AS timestamptz[])),
        (SELECT CAST(:d_outcomes AS text[])), (SELECT CAST(:d_statuses AS integer[])),
        (SELECT CAST(:d_latencies AS integer[])), (SELECT CAST(:d_responses AS text[])),
        (SELECT CAST(:d_retry_others AS boolean[])))
        AS d (event_id, attempt_id, h, spent_at, outcome, status, latency, response,
              retry_others)
),
attempt AS (
    UPDATE delivery_attempts a SET finished_at = clock_timestamp(), outcome = d.outcome,
        http_status = d.status, latency_ms = d.latency,
        response = CAST(d.response AS jsonb),
        error = CASE WHEN d.current THEN NULL ELSE :stale_error END
    FROM done d WHERE a.id = d.attempt_id
),
per_key AS (
    SELECT h, array_agg(spent_at) AS spent, bool_or(current) AS current,
        bool_or(current AND retry_others) AS retry_others
    FROM done GROUP BY h
),
locked AS MATERIALIZED (
    -- In key order, as SPEND locks them: the two never wait for each other in a circle.
    SELECT k.routing_key_hash FROM dispatch_keys k
    WHERE k.routing_key_hash IN (SELECT h FROM per_key)
    ORDER BY k.routing_key_hash
    FOR NO KEY UPDATE
),
key AS (
    UPDATE dispatch_keys k SET
        open_sends = ARRAY(SELECT o FROM unnest(k.open_sends) AS o WHERE o <> ALL(g.spent)),
        backoff_level = CASE WHEN g.current THEN 0 ELSE k.backoff_level END,
        key_rejections = CASE WHEN g.current THEN 0 ELSE k.key_rejections END,
        timeouts = CASE WHEN g.current THEN 0 ELSE k.timeouts END
    FROM per_key g
    WHERE k.routing_key_hash = g.h AND k.routing_key_hash IN (SELECT routing_key_hash FROM locked)
),
others AS (
    UPDATE events e SET next_attempt_at = clock_timestamp()
    FROM per_key g
    WHERE g.retry_others AND e.routing_key_hash = g.h AND e.status = 'queued'
      AND e.attempts > 0 AND e.next_attempt_at > clock_timestamp()
)
"""


def delivered_beside(deliveries: Sequence[Delivery], *, stale_error: str) -> Beside:
    """What deliveries write besides their events' status, for `outcomes.mark_delivered_many`
    to run in its statement (its CTE `delivered` holds the events whose fence held)."""
    return Beside(
        _DELIVERED_BESIDE,
        {
            "d_events": [d.event_id for d in deliveries],
            "d_attempts": [d.attempt.id for d in deliveries],
            "d_hashes": [d.routing_key_hash for d in deliveries],
            "d_spent": [d.attempt.spent_at for d in deliveries],
            "d_outcomes": [d.outcome for d in deliveries],
            "d_statuses": [d.http_status for d in deliveries],
            "d_latencies": [d.latency_ms for d in deliveries],
            "d_responses": [
                None if d.response is None else json.dumps(d.response) for d in deliveries
            ],
            "d_retry_others": [d.retry_others for d in deliveries],
            "stale_error": stale_error,
        },
    )


async def key_delivered(db: Database, routing_key_hash: str) -> None:
    """PagerDuty accepted an event of the key: whatever made it back off, refuse or time out
    is over. Call in the fenced transaction that marks the event delivered."""
    await db.execute(
        """
        UPDATE dispatch_keys SET backoff_level = 0, key_rejections = 0, timeouts = 0
        WHERE routing_key_hash = :h
        """,
        {"h": routing_key_hash},
    )


async def retry_key_now(db: Database, routing_key_hash: str) -> None:
    """Make the key's events that are waiting out a retry backoff due now.

    Called when PagerDuty accepts a retried event of the key: whatever made it fail (an outage,
    timeouts) is over, and the others need not wait out their backoff, up to the retry cap,
    to find out. They still spend the key's budget, so this cannot flood PagerDuty."""
    await db.execute(
        """
        UPDATE events SET next_attempt_at = clock_timestamp()
        WHERE routing_key_hash = :h AND status = 'queued' AND attempts > 0
          AND next_attempt_at > clock_timestamp()
        """,
        {"h": routing_key_hash},
    )


async def pause_key(
    db: Database,
    routing_key_hash: str,
    pause_for_level: Callable[[int], timedelta],
    *,
    reason: str,
) -> None:
    """PagerDuty said 429, or keeps not answering: rest this key, and only this key. The pause
    grows once per episode: the many sends in flight when PagerDuty starts refusing all come
    back together, and counting each would push one episode's pause to the cap. `reason` is
    shown on the key's waiting events. Call inside a transaction."""
    row = await db.fetch_one(
        """
        SELECT backoff_level, paused_until > clock_timestamp() AS paused
        FROM dispatch_keys WHERE routing_key_hash = :h FOR UPDATE
        """,
        {"h": routing_key_hash},
    )
    if row is None or row._mapping["paused"]:
        return
    level = int(row._mapping["backoff_level"])
    await db.execute(
        """
        UPDATE dispatch_keys SET backoff_level = :level, pause_reason = :reason,
            paused_until = clock_timestamp() + CAST(:pause AS interval)
        WHERE routing_key_hash = :h
        """,
        {
            "h": routing_key_hash,
            "level": level + 1,
            "pause": pause_for_level(level),
            "reason": reason,
        },
    )


async def count_key_rejection(db: Database, routing_key_hash: str) -> int:
    """One more answer in a row saying the routing key itself is wrong; returns the count."""
    value = await db.fetch_val(
        """
        UPDATE dispatch_keys SET key_rejections = key_rejections + 1
        WHERE routing_key_hash = :h RETURNING key_rejections
        """,
        {"h": routing_key_hash},
    )
    return int(value or 0)


async def count_timeout(db: Database, routing_key_hash: str) -> int:
    """One more send to this key without an answer in time; returns how many since the key's
    last delivery."""
    value = await db.fetch_val(
        """
        UPDATE dispatch_keys SET timeouts = timeouts + 1
        WHERE routing_key_hash = :h RETURNING timeouts
        """,
        {"h": routing_key_hash},
    )
    return int(value or 0)


@dataclass(frozen=True)
class NextDue:
    """When the earliest queued event becomes due (None: nothing is queued that this worker
    could send), and the keys resting now (paused: their budget spent, or PagerDuty asked to
    wait) with the seconds each has left, at most RESTING_KEYS_MAX of them."""

    due_in: timedelta | None
    resting: Mapping[str, float]


RESTING_KEYS_MAX = 1000


async def next_due_in(
    db: Database, *, max_in_flight_per_key: int, full_hosts: Sequence[str]
) -> NextDue:
    """How long until the earliest queued event becomes due, its key's pause included. Keys
    with their cap of sends in flight, and keys of a host this worker has no room for, are
    left out: a finished send wakes the worker for them, not the clock. Read from the ready
    keys, one index probe each, so its cost does not grow with the backlog. With it, the keys
    with pending events that rest now, read in the same statement."""
    row = await db.fetch_one(
        """
        WITH r AS (SELECT DISTINCT routing_key_hash FROM ready_keys),
        resting AS (
            SELECT k.routing_key_hash,
                extract(epoch FROM k.paused_until - clock_timestamp()) AS seconds
            FROM r JOIN dispatch_keys k ON k.routing_key_hash = r.routing_key_hash
            WHERE k.paused_until > clock_timestamp()
            LIMIT :resting_max
        )
        SELECT (
            SELECT min(GREATEST(q.due, COALESCE(k.paused_until, '-infinity'))) - clock_timestamp()
            FROM r
            CROSS JOIN LATERAL (
                SELECT e.next_attempt_at AS due FROM events e
                WHERE e.routing_key_hash = r.routing_key_hash AND e.status = 'queued'
                ORDER BY e.next_attempt_at LIMIT 1
            ) AS q
            LEFT JOIN dispatch_keys k ON k.routing_key_hash = r.routing_key_hash
            WHERE (k.host IS NULL OR k.host <> ALL(CAST(:full_hosts AS text[])))
              AND (
                SELECT count(*) FROM events s
                WHERE s.routing_key_hash = r.routing_key_hash
                  AND s.status = 'sending' AND s.lease_until > clock_timestamp()
              ) < :key_cap
        ) AS due_in,
        ARRAY(SELECT routing_key_hash FROM resting) AS resting_keys,
        ARRAY(SELECT CAST(seconds AS float8) FROM resting) AS resting_seconds
        """,
        {
            "full_hosts": list(full_hosts),
            "key_cap": max_in_flight_per_key,
            "resting_max": RESTING_KEYS_MAX,
        },
    )
    if row is None:
        return NextDue(None, {})
    due = row._mapping["due_in"]
    return NextDue(
        due if isinstance(due, timedelta) else None,
        dict(zip(row._mapping["resting_keys"], row._mapping["resting_seconds"], strict=True)),
    )
