-- Isolation between routing keys and PagerDuty hosts, and fencing of late senders.
-- Written to apply cleanly twice: its number may change while migrations of other work land.

-- Incremented by every claim: a sender's writes apply only while the event is still `sending`
-- under the token its claim returned, so a sender whose lease was taken over changes nothing.
ALTER TABLE events ADD COLUMN IF NOT EXISTS lease_token bigint NOT NULL DEFAULT 0;
-- The claim counts each key's sends in flight (live leases) here: a few rows per key at most.
CREATE INDEX IF NOT EXISTS events_in_flight ON events (routing_key_hash, lease_until)
    WHERE status = 'sending';

-- The lease an attempt was made under, to tell a stale sender's answer from the current one's.
ALTER TABLE delivery_attempts ADD COLUMN IF NOT EXISTS lease_token bigint;
-- Attempts still waiting for PagerDuty: the exact per-key count, taken under the key's lock.
CREATE INDEX IF NOT EXISTS delivery_attempts_open
    ON delivery_attempts (routing_key_hash, started_at)
    WHERE finished_at IS NULL;

-- The PagerDuty host a key's events go to (its region), so a claim can skip a saturated host;
-- sends in a row that got no answer in time; and why the key rests, shown on its events.
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS host text;
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS timeouts integer NOT NULL DEFAULT 0;
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS pause_reason text;
