-- The tenant's delivery history (app/dispatch/log_store.py `history`): its text filter finds the
-- events of the alerts whose summary or dedup key match through the alert's index, and the
-- events that belong to no alert (change events, skipped acknowledges and resolves) here, so
-- that a search does not read every event of the tenant. Partial: only those few events pay
-- for it; ingest's other inserts do not.
-- Built inside the migration's transaction, it holds off writes to events while it reads the
-- table (a few seconds a million rows). On a large outbox, create it first while serving with
-- the same statement as CREATE INDEX CONCURRENTLY: this one then finds it and does nothing.
-- Written to apply cleanly twice: its number may change while migrations of other work land.
CREATE INDEX IF NOT EXISTS events_without_alert ON events (tenant_id, seq)
    WHERE alert_id IS NULL;
