-- Claims look at (tenant, routing key) pairs first, so a key whose budget is spent (or that
-- PagerDuty told to wait) costs one index entry per pending event, not a heap visit each.
CREATE INDEX events_pending_keys ON events (tenant_id, routing_key_hash, seq)
    WHERE status IN ('queued', 'sending');
CREATE INDEX events_queued_due ON events (routing_key_hash, next_attempt_at)
    WHERE status = 'queued';
DROP INDEX events_due;
