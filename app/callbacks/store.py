"""SQL of callbacks: recording, claiming, settling, listing; the tenants' own receivers; and the
reads that describe an alert, a service or a connection in a callback's body.

Times are the database's (`clock_timestamp()`), so senders on several machines agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from databases import Database

# Every write a sender makes to its callback after the claim carries this condition: the
# callback is still being sent under the lease its claim took.
FENCE = "status = 'sending' AND lease_token = :token"

CALLBACK_COLUMNS = (
    "id, seq, tenant_id, type, order_key, body, status, attempts, next_attempt_at, "
    "last_status, last_error, created_at, finished_at"
)


@dataclass(frozen=True)
class Callback:
    id: UUID
    seq: int
    tenant_id: UUID
    type: str
    order_key: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Claimed:
    id: UUID
    tenant_id: UUID
    body: str
    attempts: int
    created_at: datetime
    lease_token: int
    # Where it goes and what signs it, as of the claim: the tenant's own receiver, else the
    # global URL (and the configured secrets); None when there is neither.
    url: str | None
    own_receiver: bool
    secret_enc: str | None = field(repr=False)
    previous_secret_enc: str | None = field(repr=False)
    previous_valid: bool


@dataclass(frozen=True)
class Attempt:
    callback_id: UUID
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Receiver:
    """A tenant's own receiver (`tenant_callbacks`)."""

    tenant_id: UUID
    url: str
    secret_enc: str
    previous_secret_enc: str | None
    previous_secret_until: datetime | None
    updated_at: datetime


RECEIVER_COLUMNS = (
    "tenant_id, url, secret_enc, previous_secret_enc, previous_secret_until, updated_at"
)


def _callback(row: Any) -> Callback:
    return Callback(**dict(row._mapping))


# --- recording ---------------------------------------------------------------------------


async def publish_defaults(db: Database, *, url_set: bool) -> None:
    """Say whether PDCONNECT_CALLBACK_URL is set (each sender, at start)."""
    await db.execute(
        """
        INSERT INTO callback_defaults (only_row, url_set) VALUES (true, :url_set)
        ON CONFLICT (only_row) DO UPDATE SET url_set = EXCLUDED.url_set, updated_at = now()
        WHERE callback_defaults.url_set IS DISTINCT FROM EXCLUDED.url_set
        """,
        {"url_set": url_set},
    )


ENABLED = """
    EXISTS (SELECT 1 FROM tenant_callbacks WHERE tenant_id = :tenant_id)
    OR EXISTS (SELECT 1 FROM callback_defaults WHERE url_set)
"""


async def enabled(db: Database, tenant_id: UUID) -> bool:
    """Whether the tenant's callbacks have a receiver: its own, or the global one."""
    return bool(await db.fetch_val(f"SELECT {ENABLED}", {"tenant_id": tenant_id}))


async def insert_callback(
    db: Database,
    *,
    callback_id: UUID,
    tenant_id: UUID,
    type: str,
    order_key: str,
    body: str,
    source_key: str | None,
) -> bool:
    """Record a callback in the caller's transaction; False when the tenant has no receiver or
    the same source made one before."""
    value = await db.fetch_val(
        f"""
        INSERT INTO callbacks (id, tenant_id, type, order_key, body, source_key)
        SELECT :id, :tenant_id, :type, :order_key, :body, :source_key
        WHERE {ENABLED}
        ON CONFLICT (tenant_id, source_key) DO NOTHING
        RETURNING 1
        """,
        {
            "id": callback_id,
            "tenant_id": tenant_id,
            "type": type,
            "order_key": order_key,
            "body": body,
            "source_key": source_key,
        },
    )
    return value is not None


async def last_type_about(
    db: Database, tenant_id: UUID, order_key: str, service_id: UUID | None
) -> str | None:
    """The type of the newest callback of `order_key` about this service (or about the whole
    connection when None): connection callbacks say changes, not repeats."""
    value = await db.fetch_val(
        """
        SELECT type FROM callbacks
        WHERE tenant_id = :tenant_id AND order_key = :order_key
          AND (CAST(body AS jsonb) #>> '{data,service,id}') IS NOT DISTINCT FROM :service
        ORDER BY seq DESC LIMIT 1
        """,
        {
            "tenant_id": tenant_id,
            "order_key": order_key,
            "service": None if service_id is None else str(service_id),
        },
    )
    return value if isinstance(value, str) else None


# --- sending -----------------------------------------------------------------------------

# Heads only: the oldest unfinished callback of each (tenant, order key), so one key's
# callbacks go out one at a time and in order. Of the due heads, at most each receiver host's
# room (its sends this worker may still start), oldest first. Locked SKIP LOCKED and re-checked
# under the lock: a head another sender settled meanwhile is no longer due. A head this
# statement's snapshot sees is truly the head, since a callback leaves the unfinished states
# only for a final one.
CLAIM = """
WITH heads AS (
    SELECT DISTINCT ON (tenant_id, order_key) id, seq, tenant_id, status, next_attempt_at,
        lease_until
    FROM callbacks WHERE status IN ('queued', 'sending')
    ORDER BY tenant_id, order_key, seq
), due AS (
    SELECT h.id, h.seq,
        lower(substring(COALESCE(r.url, :global_url) FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)'))
            AS host
    FROM heads h LEFT JOIN tenant_callbacks r ON r.tenant_id = h.tenant_id
    WHERE (h.status = 'queued' AND h.next_attempt_at <= clock_timestamp())
       OR (h.status = 'sending' AND h.lease_until <= clock_timestamp())
), ranked AS (
    SELECT id, seq, host, row_number() OVER (PARTITION BY host ORDER BY seq) AS place
    FROM due
), chosen AS (
    SELECT id FROM ranked
    WHERE place <= COALESCE(CAST(CAST(:rooms AS jsonb) ->> host AS integer), :per_host)
    ORDER BY seq LIMIT :limit
), locked AS (
    SELECT c.id, c.tenant_id FROM callbacks c
    WHERE c.id IN (SELECT id FROM chosen)
      AND ((c.status = 'queued' AND c.next_attempt_at <= clock_timestamp())
        OR (c.status = 'sending' AND c.lease_until <= clock_timestamp()))
    FOR UPDATE SKIP LOCKED
)
UPDATE callbacks c SET status = 'sending', lease_token = c.lease_token + 1,
    lease_until = clock_timestamp() + CAST(:lease AS interval)
FROM locked LEFT JOIN tenant_callbacks r ON r.tenant_id = locked.tenant_id
WHERE c.id = locked.id
RETURNING c.id, c.tenant_id, c.body, c.attempts, c.created_at, c.lease_token, c.seq,
    COALESCE(r.url, :global_url) AS url, r.tenant_id IS NOT NULL AS own_receiver,
    r.secret_enc, r.previous_secret_enc,
    COALESCE(r.previous_secret_until > clock_timestamp(), false) AS previous_valid
"""


async def claim(
    db: Database,
    *,
    limit: int,
    lease: timedelta,
    global_url: str | None,
    per_host: int,
    rooms: Mapping[str, int],
) -> list[Claimed]:
    rows = await db.fetch_all(
        CLAIM,
        {
            "limit": limit,
            "lease": lease,
            "global_url": global_url,
            "per_host": per_host,
            "rooms": json.dumps(dict(rooms)),
        },
    )
    ordered = sorted(rows, key=lambda r: r._mapping["seq"])
    return [Claimed(**{k: v for k, v in r._mapping.items() if k != "seq"}) for r in ordered]


async def next_due_in(db: Database) -> timedelta | None:
    """How long until the earliest unfinished callback is due (a head or not: close enough
    for a sleep)."""
    value = await db.fetch_val(
        """
        SELECT min(CASE WHEN status = 'queued' THEN next_attempt_at ELSE lease_until END)
            - clock_timestamp()
        FROM callbacks WHERE status IN ('queued', 'sending')
        """
    )
    return value if isinstance(value, timedelta) else None


async def record_attempt(db: Database, attempt: Attempt) -> None:
    await db.execute(
        """
        INSERT INTO callback_attempts (callback_id, started_at, duration_ms, status_code, error)
        VALUES (:callback_id, :started_at, :duration_ms, :status_code, :error)
        """,
        {
            "callback_id": attempt.callback_id,
            "started_at": attempt.started_at,
            "duration_ms": attempt.duration_ms,
            "status_code": attempt.status_code,
            "error": attempt.error,
        },
    )


async def finish(
    db: Database, claimed: Claimed, *, status: str, last_status: int | None, error: str | None
) -> bool:
    """Delivered or failed, if the callback is still this sender's."""
    value = await db.fetch_val(
        f"""
        UPDATE callbacks SET status = :status, attempts = attempts + 1, lease_until = NULL,
            last_status = :last_status, last_error = :error, finished_at = clock_timestamp()
        WHERE id = :id AND {FENCE}
        RETURNING 1
        """,
        {
            "id": claimed.id,
            "token": claimed.lease_token,
            "status": status,
            "last_status": last_status,
            "error": error,
        },
    )
    return value is not None


async def retry_later(
    db: Database, claimed: Claimed, *, delay: timedelta, last_status: int | None, error: str
) -> bool:
    value = await db.fetch_val(
        f"""
        UPDATE callbacks SET status = 'queued', attempts = attempts + 1, lease_until = NULL,
            next_attempt_at = clock_timestamp() + CAST(:delay AS interval),
            last_status = :last_status, last_error = :error
        WHERE id = :id AND {FENCE}
        RETURNING 1
        """,
        {
            "id": claimed.id,
            "token": claimed.lease_token,
            "delay": delay,
            "last_status": last_status,
            "error": error,
        },
    )
    return value is not None


async def remove_finished(db: Database, *, older_than: timedelta, batch: int) -> int:
    """Finished callbacks (and their attempts, by cascade) past the retention period."""
    rows = await db.fetch_all(
        """
        DELETE FROM callbacks WHERE id IN (
            SELECT id FROM callbacks
            WHERE finished_at < clock_timestamp() - CAST(:older_than AS interval)
            ORDER BY finished_at LIMIT :batch)
        RETURNING 1
        """,
        {"older_than": older_than, "batch": batch},
    )
    return len(rows)


# --- reading, for the admin API ------------------------------------------------------------


async def list_callbacks(
    db: Database, tenant_id: UUID, *, status: str | None, limit: int, before: int | None
) -> list[Callback]:
    clauses = ["tenant_id = :tenant_id"]
    params: dict[str, Any] = {"tenant_id": tenant_id, "limit": limit}
    if status is not None:
        clauses.append("status = :status")
        params["status"] = status
    if before is not None:
        clauses.append("seq < :before")
        params["before"] = before
    rows = await db.fetch_all(
        f"""
        SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE {" AND ".join(clauses)}
        ORDER BY seq DESC LIMIT :limit
        """,
        params,
    )
    return [_callback(r) for r in rows]


async def get_callback(db: Database, tenant_id: UUID, callback_id: UUID) -> Callback | None:
    row = await db.fetch_one(
        f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE tenant_id = :tenant_id AND id = :id",
        {"tenant_id": tenant_id, "id": callback_id},
    )
    return None if row is None else _callback(row)


async def attempts_of(db: Database, callback_ids: Sequence[UUID]) -> dict[UUID, list[Attempt]]:
    found: dict[UUID, list[Attempt]] = {i: [] for i in callback_ids}
    if not callback_ids:
        return found
    rows = await db.fetch_all(
        """
        SELECT callback_id, started_at, duration_ms, status_code, error FROM callback_attempts
        WHERE callback_id = ANY(CAST(:ids AS uuid[])) ORDER BY callback_id, id
        """,
        {"ids": list(callback_ids)},
    )
    for r in rows:
        found[r._mapping["callback_id"]].append(Attempt(**dict(r._mapping)))
    return found


# --- tenants' receivers --------------------------------------------------------------------


async def get_receiver(db: Database, tenant_id: UUID) -> Receiver | None:
    row = await db.fetch_one(
        f"SELECT {RECEIVER_COLUMNS} FROM tenant_callbacks WHERE tenant_id = :tenant_id",
        {"tenant_id": tenant_id},
    )
    return None if row is None else Receiver(**dict(row._mapping))


async def put_receiver(
    db: Database, tenant_id: UUID, *, url: str, secret_enc: str | None
) -> Receiver:
    """Set the tenant's receiver; a None secret keeps the one it has (the caller makes one
    when it has none)."""
    row = await db.fetch_one(
        f"""
        INSERT INTO tenant_callbacks (tenant_id, url, secret_enc)
        VALUES (:tenant_id, :url, :secret_enc)
        ON CONFLICT (tenant_id) DO UPDATE SET url = EXCLUDED.url,
            secret_enc = COALESCE(:new_secret_enc, tenant_callbacks.secret_enc),
            updated_at = now()
        RETURNING {RECEIVER_COLUMNS}
        """,
        {
            "tenant_id": tenant_id,
            "url": url,
            "secret_enc": secret_enc or "",
            "new_secret_enc": secret_enc,
        },
    )
    assert row is not None
    return Receiver(**dict(row._mapping))


async def delete_receiver(db: Database, tenant_id: UUID) -> bool:
    value = await db.fetch_val(
        "DELETE FROM tenant_callbacks WHERE tenant_id = :tenant_id RETURNING 1",
        {"tenant_id": tenant_id},
    )
    return value is not None


async def rotate_secret(
    db: Database, tenant_id: UUID, *, secret_enc: str, overlap: timedelta
) -> Receiver | None:
    row = await db.fetch_one(
        f"""
        UPDATE tenant_callbacks SET previous_secret_enc = secret_enc, secret_enc = :secret_enc,
            previous_secret_until = now() + CAST(:overlap AS interval), updated_at = now()
        WHERE tenant_id = :tenant_id
        RETURNING {RECEIVER_COLUMNS}
        """,
        {"tenant_id": tenant_id, "secret_enc": secret_enc, "overlap": overlap},
    )
    return None if row is None else Receiver(**dict(row._mapping))


# --- what a callback's body says --------------------------------------------------------------


async def tenant_ref(db: Database, tenant_id: UUID) -> dict[str, Any]:
    external_id = await db.fetch_val(
        "SELECT external_id FROM tenants WHERE id = :id", {"id": tenant_id}
    )
    return {"id": str(tenant_id), "external_id": external_id}


async def alert_ref(db: Database, tenant_id: UUID, dedup_key: str) -> dict[str, Any] | None:
    """The alert's newest life and the ids of its events (pdconnect's event ids, in order)."""
    row = await db.fetch_one(
        """
        SELECT a.id, a.state, ARRAY(
            SELECT e.id FROM events e WHERE e.alert_id = a.id ORDER BY e.seq) AS event_ids
        FROM alerts a WHERE a.tenant_id = :tenant_id AND a.dedup_key = :dedup_key
        ORDER BY a.opened_at DESC, a.id LIMIT 1
        """,
        {"tenant_id": tenant_id, "dedup_key": dedup_key},
    )
    if row is None:
        return None
    return {
        "id": str(row._mapping["id"]),
        "dedup_key": dedup_key,
        "state": row._mapping["state"],
        "event_ids": [str(i) for i in row._mapping["event_ids"]],
    }


async def service_ref(
    db: Database,
    *,
    service_id: UUID | None = None,
    installation_id: UUID | None = None,
    pd_service_id: str | None = None,
) -> dict[str, Any] | None:
    """A service by our id, or by its installation and PagerDuty id."""
    params: dict[str, Any]
    if service_id is not None:
        where, params = "id = :id", {"id": service_id}
    else:
        where = "installation_id = :installation_id AND pd_service_id = :pd_service_id"
        params = {"installation_id": installation_id, "pd_service_id": pd_service_id}
    row = await db.fetch_one(
        f"SELECT id, name, pd_service_id, installation_id FROM pd_services WHERE {where}", params
    )
    if row is None:
        return None
    m = row._mapping
    return {
        "id": str(m["id"]),
        "name": m["name"],
        "pagerduty_id": m["pd_service_id"],
        "installation_id": str(m["installation_id"]),
    }


async def installation_ref(
    db: Database, installation_id: UUID
) -> tuple[UUID, dict[str, Any]] | None:
    """The installation's tenant and what a callback says of it."""
    row = await db.fetch_one(
        """
        SELECT tenant_id, id, method, subdomain, region, status FROM installations
        WHERE id = :id
        """,
        {"id": installation_id},
    )
    if row is None:
        return None
    m = row._mapping
    return m["tenant_id"], {
        "id": str(m["id"]),
        "method": m["method"],
        "subdomain": m["subdomain"],
        "region": m["region"],
        "status": m["status"],
    }


async def incident_of(
    db: Database, tenant_id: UUID, incident_id: str
) -> tuple[UUID, str] | None:
    """The service and dedup key an incident's state was recorded under (a note's webhook
    names only the incident)."""
    row = await db.fetch_one(
        """
        SELECT service_id, dedup_key FROM incident_states
        WHERE tenant_id = :tenant_id AND incident_id = :incident_id
        ORDER BY changed_at DESC LIMIT 1
        """,
        {"tenant_id": tenant_id, "incident_id": incident_id},
    )
    return None if row is None else (row._mapping["service_id"], row._mapping["dedup_key"])
