-- An index that every event paid for and no read needs. Written to apply cleanly twice: its
-- number may change while migrations of other work land.
--
-- `events_seq_key`, the UNIQUE constraint on `seq`: `seq` is an identity column, so its sequence
-- already makes it unique. Every read that orders by `seq` names its tenant and reads
-- `events_tenant` (tenant_id, seq DESC) at the same cost, the delivery history filtered by a
-- service included (app/dispatch/log_store.py `_heads`). Each event paid for it at its insert
-- and at each of its non-HOT updates (the claim, the delivered mark).
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_seq_key;
