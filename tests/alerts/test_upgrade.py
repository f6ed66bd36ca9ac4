"""Upgrading a database with alerts already in the outbox: each gets its life, so a resolve
sent after the upgrade still reaches the services its trigger went to."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg

from app.db.migrations import MIGRATIONS_DIR, apply_migrations
from app.db.pool import asyncpg_dsn
from tests.test_db import empty_database

__all__ = ["empty_database"]

BEFORE_ALERT_LIFE = 5

SEED = """
INSERT INTO tenants (id, name) VALUES ('00000000-0000-4000-8000-000000000001', 'T');
INSERT INTO installations (id, tenant_id, method, account_key, region, events_url)
VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001',
        'manual', 'manual', 'us', 'https://events.pagerduty.com');
INSERT INTO pd_services (id, tenant_id, installation_id, name, routing_key_enc, routing_key_hash)
VALUES
  ('00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-000000000001',
   '00000000-0000-4000-8000-000000000002', 'A', 'enc-a', 'hash-a'),
  ('00000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-000000000001',
   '00000000-0000-4000-8000-000000000002', 'B', 'enc-b', 'hash-b');
"""

EVENT = """
INSERT INTO events (tenant_id, service_id, routing_key_hash, dedup_key, kind, api, body, source,
    status)
VALUES ('00000000-0000-4000-8000-000000000001', $1, $2, $3, $4, 'v2', '{}', 'native', $5)
"""
A = "00000000-0000-4000-8000-00000000000a"
B = "00000000-0000-4000-8000-00000000000b"


async def test_alerts_in_the_outbox_get_their_life_on_upgrade(
    empty_database: str, tmp_path: Path
) -> None:
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name.split("_", 1)[0]) <= BEFORE_ALERT_LIFE:
            shutil.copy(path, tmp_path / path.name)
    await apply_migrations(empty_database, tmp_path)
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        await conn.execute(SEED)
        # An open alert sent to both services, one acknowledged, one resolved, a change event.
        for service, key in ((A, "hash-a"), (B, "hash-b")):
            await conn.execute(EVENT, service, key, "open", "trigger", "delivered")
        await conn.execute(EVENT, A, "hash-a", "acked", "trigger", "delivered")
        await conn.execute(EVENT, A, "hash-a", "acked", "acknowledge", "queued")
        await conn.execute(EVENT, B, "hash-b", "closed", "trigger", "delivered")
        await conn.execute(EVENT, B, "hash-b", "closed", "resolve", "delivered")
        await conn.execute(EVENT, A, "hash-a", None, "change", "delivered")
        await conn.execute(EVENT, A, "hash-a", "only-resolved", "resolve", "delivered")
        await apply_migrations(empty_database)
        rows = await conn.fetch(
            "SELECT id, dedup_key, service_ids, state, acknowledged_at, resolved_at FROM alerts"
        )
        lives = {r["dedup_key"]: r for r in rows}
        assert set(lives) == {"open", "acked", "closed"}
        assert {str(s) for s in lives["open"]["service_ids"]} == {A, B}
        assert lives["open"]["state"] == "triggered"
        assert lives["acked"]["state"] == "acknowledged"
        assert lives["acked"]["acknowledged_at"] is not None
        assert lives["closed"]["state"] == "resolved"
        assert lives["closed"]["resolved_at"] is not None
        linked = await conn.fetch(
            "SELECT dedup_key, alert_id FROM events WHERE kind <> 'change' ORDER BY seq"
        )
        for row in linked:
            if row["dedup_key"] in lives:
                assert row["alert_id"] == lives[row["dedup_key"]]["id"]
            else:
                assert row["alert_id"] is None
    finally:
        await conn.close()
