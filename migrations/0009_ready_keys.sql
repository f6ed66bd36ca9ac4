-- Claims that read only the keys with work, and a budget spent in one statement.
-- Written to apply cleanly twice: its number may change while migrations of other work land.

-- One row per (tenant, routing key) with pending (queued or sending) events: the claim starts
-- here instead of from every pending event. Kept by app/outbox (ready.py): whatever makes an
-- event pending or due adds its key; a claim that finds a key with nothing pending removes it
-- under the protocol ready.py describes. `turn_at` is when a claim last looked at the key:
-- claims take keys least recently looked at first, so every key with work gets its turn.
CREATE TABLE IF NOT EXISTS ready_keys (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    routing_key_hash text NOT NULL,
    turn_at timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (tenant_id, routing_key_hash)
);
-- Each tenant's keys in turn order, so a claim reads a few of them, however many have work.
CREATE INDEX IF NOT EXISTS ready_keys_turn ON ready_keys (tenant_id, turn_at);
INSERT INTO ready_keys (tenant_id, routing_key_hash)
SELECT DISTINCT tenant_id, routing_key_hash FROM events WHERE status IN ('queued', 'sending')
ON CONFLICT DO NOTHING;

-- The key's budget and its cap of sends in flight, in its own row, so that one conditional
-- UPDATE decides and spends them (app/dispatch/store.py reserve_budget): `sends` holds the start
-- times of the key's most recent sends (at most its budget's worth, oldest first), `open_sends`
-- those of its sends still waiting for PagerDuty's answer.
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS sends timestamptz[] NOT NULL DEFAULT '{}';
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS open_sends timestamptz[] NOT NULL DEFAULT '{}';
-- What the attempts already say, so the budget carries over the upgrade.
UPDATE dispatch_keys k SET
    sends = COALESCE((
        SELECT array_agg(a.started_at ORDER BY a.started_at) FROM delivery_attempts a
        WHERE a.routing_key_hash = k.routing_key_hash
          AND a.started_at > clock_timestamp() - interval '62 seconds'
    ), '{}'),
    open_sends = COALESCE((
        SELECT array_agg(a.started_at ORDER BY a.started_at) FROM delivery_attempts a
        WHERE a.routing_key_hash = k.routing_key_hash AND a.finished_at IS NULL
          AND a.started_at > clock_timestamp() - interval '30 seconds'
    ), '{}')
WHERE k.sends = '{}' AND k.open_sends = '{}';
