"""What keeping the rollups by trigger would cost the hot paths, against the periodic fold
(app/analytics/rollup.py explains the choice). Not a test: run it by hand,

    PYTHONPATH=$PWD python -m tests.analytics.measure_triggers [--events 20000]

It starts an embedded PostgreSQL, applies the migrations, and times, with and without a row
trigger that adds each finished event to its `analytics_hours` row: events inserted in
batches of 128 and marked delivered in batches of 128 (the shapes of ingest's and the
dispatcher's statements), then one fold of the same events. Figures are per event."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg

from app.analytics.rollup import fold_once
from app.db.migrations import apply_migrations
from app.db.pool import PooledDatabase, asyncpg_dsn

BATCH = 128
TRIGGER = """
CREATE FUNCTION analytics_by_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_hours AS h (tenant_id, service_id, hour, alerts, delivered)
    VALUES (NEW.tenant_id, NEW.service_id, date_trunc('hour', NEW.created_at, 'UTC'),
        CASE WHEN NEW.kind = 'trigger' THEN 1 ELSE 0 END, 1)
    ON CONFLICT (tenant_id, service_id, hour) DO UPDATE SET
        alerts = h.alerts + EXCLUDED.alerts, delivered = h.delivered + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER analytics_by_trigger AFTER UPDATE OF status ON events
    FOR EACH ROW WHEN (NEW.status = 'delivered' AND OLD.status <> 'delivered')
    EXECUTE FUNCTION analytics_by_trigger();
"""
INSERT = """
INSERT INTO events (tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body, source)
SELECT $1, $2, 'hash', 'k' || g, 'trigger', 'v2', '{}'::jsonb, 'native'
FROM generate_series(1, $3) AS g RETURNING id
"""
DELIVER = """
UPDATE events SET status = 'delivered', finished_at = clock_timestamp()
WHERE id = ANY($1::uuid[])
"""


async def _setup(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = await conn.fetchval("INSERT INTO tenants (name) VALUES ('m') RETURNING id")
    inst = await conn.fetchval(
        """
        INSERT INTO installations (tenant_id, method, account_key, region, events_url)
        VALUES ($1, 'manual', 'manual', 'us', 'http://127.0.0.1:9') RETURNING id
        """,
        tenant,
    )
    service = await conn.fetchval(
        """
        INSERT INTO pd_services (tenant_id, installation_id, name, kind, api_version,
            routing_key_enc, routing_key_hash)
        VALUES ($1, $2, 's', 'manual', 'v2', 'x', 'hash') RETURNING id
        """,
        tenant,
        inst,
    )
    return tenant, service


async def _round(url: str, events: int, *, trigger: bool) -> tuple[float, float, float]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("TRUNCATE events, analytics_hours CASCADE")
        await conn.execute("DROP TRIGGER IF EXISTS analytics_by_trigger ON events")
        await conn.execute("DROP FUNCTION IF EXISTS analytics_by_trigger()")
        if trigger:
            await conn.execute(TRIGGER)
        tenant, service = await _setup(conn)
        ids: list[uuid.UUID] = []
        started = time.perf_counter()
        for _ in range(events // BATCH):
            rows = await conn.fetch(INSERT, tenant, service, BATCH)
            ids.extend(r["id"] for r in rows)
        inserted = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(ids), BATCH):
            await conn.execute(DELIVER, ids[i : i + BATCH])
        delivered = time.perf_counter() - started
        await conn.execute("UPDATE analytics_watermark SET folded_to = '-infinity'")
        await conn.execute("UPDATE events SET finished_at = finished_at - interval '5 minutes'")
    finally:
        await conn.close()
    db = PooledDatabase(url)
    await db.connect()
    try:
        started = time.perf_counter()
        while await fold_once(db, lag=timedelta(minutes=1)):
            pass
        folded = time.perf_counter() - started
    finally:
        await db.disconnect()
    n = len(ids)
    return inserted / n * 1e6, delivered / n * 1e6, folded / n * 1e6


async def main(events: int) -> None:
    from pgserver.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="pdc-mt-", dir="/tmp"))
    server = get_server(folder, cleanup_mode="delete")
    try:
        url = str(server.get_uri("postgres"))
        await apply_migrations(url)
        print(f"{events} events; microseconds per event (best of 3)")
        print(f"{'':>10} {'insert':>8} {'deliver':>8} {'fold':>8}")
        for trigger in (False, True, False, True):
            best = [
                min(x)
                for x in zip(
                    *[await _round(url, events, trigger=trigger) for _ in range(3)], strict=True
                )
            ]
            name = "trigger" if trigger else "fold only"
            print(f"{name:>10} {best[0]:8.1f} {best[1]:8.1f} {best[2]:8.1f}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().events))
