"""SQL for browser sessions (`browser_sessions`), and for sign-in links as a session sees
them before they are used.

A session's expiry is on PostgreSQL's clock, not the injected one: it must agree with the
cookie's own age, which is checked against the wall clock (itsdangerous), and a test that moves
the product's clock by days (token refreshes, link expiry) must not sign its browser out."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from databases import Database


async def insert_session(
    db: Database, *, token_hash: str, tenant_id: UUID, idle_seconds: float
) -> None:
    # Expired rows of anyone go with each sign-in: the table holds live sessions, not history.
    await db.execute("DELETE FROM browser_sessions WHERE expires_at <= now()")
    await db.execute(
        """
        INSERT INTO browser_sessions (token_hash, tenant_id, created_at, expires_at)
        VALUES (:token_hash, :tenant_id, now(),
                now() + make_interval(secs => CAST(:idle AS double precision)))
        """,
        {"token_hash": token_hash, "tenant_id": tenant_id, "idle": idle_seconds},
    )


async def live_session_tenant(
    db: Database, *, token_hash: str, idle_seconds: float, renew_every_seconds: float
) -> UUID | None:
    """The tenant of the live session with this token, or None. A session is pushed to expire
    `idle_seconds` from now when it was last pushed more than `renew_every_seconds` ago, in
    the same statement: a session in use costs a write now and then, not on every request."""
    tenant_id = await db.fetch_val(
        """
        WITH live AS (
            SELECT id, tenant_id, expires_at FROM browser_sessions
            WHERE token_hash = :token_hash AND expires_at > now()
        ), renew AS (
            UPDATE browser_sessions s
            SET expires_at = now() + make_interval(secs => CAST(:idle AS double precision))
            FROM live
            WHERE s.id = live.id AND live.expires_at < now()
                + make_interval(secs => CAST(:idle AS double precision) - :renew_every)
            RETURNING s.id
        )
        SELECT tenant_id FROM live
        """,
        {"token_hash": token_hash, "idle": idle_seconds, "renew_every": renew_every_seconds},
    )
    return tenant_id if isinstance(tenant_id, UUID) else None


async def delete_session(db: Database, *, token_hash: str) -> None:
    await db.execute(
        "DELETE FROM browser_sessions WHERE token_hash = :token_hash", {"token_hash": token_hash}
    )


async def delete_tenant_sessions(db: Database, tenant_id: UUID) -> int:
    ended = await db.fetch_val(
        """
        WITH gone AS (DELETE FROM browser_sessions WHERE tenant_id = :tenant_id RETURNING 1)
        SELECT count(*) FROM gone
        """,
        {"tenant_id": tenant_id},
    )
    return int(ended or 0)


async def void_unused_links(db: Database, tenant_id: UUID, *, now: datetime) -> int:
    """Expire the tenant's sign-in links that were not used yet: each is a session to come."""
    voided = await db.fetch_val(
        """
        WITH gone AS (
            UPDATE login_links SET expires_at = :now
            WHERE tenant_id = :tenant_id AND used_at IS NULL AND expires_at > :now
            RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        {"tenant_id": tenant_id, "now": now},
    )
    return int(voided or 0)


async def unused_link_tenant(db: Database, *, link_id: UUID, now: datetime) -> UUID | None:
    """The tenant a link would sign in to, without using it; None if unknown, used or
    expired."""
    tenant_id = await db.fetch_val(
        """
        SELECT tenant_id FROM login_links
        WHERE id = :id AND used_at IS NULL AND expires_at > :now
        """,
        {"id": link_id, "now": now},
    )
    return tenant_id if isinstance(tenant_id, UUID) else None
