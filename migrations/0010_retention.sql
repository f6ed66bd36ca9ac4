-- Retention: finished events, their attempts, and the alert lives and incident states they
-- leave behind go after PDCONNECT_RETENTION_DAYS (app/outbox/retention.py), in small batches.
-- Written to apply cleanly twice: its number may change while migrations of other work land.

-- Finished events by age: each batch of the sweep reads its oldest few rows here instead of
-- scanning the outbox. Partial, so an event gets an entry only when it finishes (finished_at is
-- set with its final status and only then): ingest's INSERT pays nothing for it.
-- Built inside the migration's transaction, it holds off writes to events while it reads the
-- table (a few seconds a million rows). On a large outbox, create it first while serving with
-- the same statement as CREATE INDEX CONCURRENTLY: this one then finds it and does nothing.
CREATE INDEX IF NOT EXISTS events_finished ON events (finished_at)
    WHERE finished_at IS NOT NULL;

-- Resolved alert lives by their last event, for the same sweep; open lives never go.
CREATE INDEX IF NOT EXISTS alerts_resolved ON alerts (last_event_at)
    WHERE state = 'resolved';

-- PagerDuty's incident states by age, for the same sweep.
CREATE INDEX IF NOT EXISTS incident_states_changed ON incident_states (changed_at);
