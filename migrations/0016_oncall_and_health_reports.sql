-- Who is on call, as last read from PagerDuty per OAuth account, and the last connection
-- health report per account. Written to apply cleanly twice: its number may change while
-- migrations of other work land.

-- One row per account someone asked about (the settings page or the on-call APIs). `data` is
-- the last good read (kept when a refresh fails, so readers see it, marked stale, with the
-- error); `next_refresh_at` is when it is due again: the refresh period, or sooner, the next
-- handover it showed. A refresh holds `refreshing_until` so one process does it at a time.
CREATE TABLE IF NOT EXISTS oncall_snapshots (
    installation_id uuid PRIMARY KEY REFERENCES installations (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    data jsonb,
    fetched_at timestamptz,
    error text,
    error_at timestamptz,
    read_at timestamptz NOT NULL,
    next_refresh_at timestamptz NOT NULL DEFAULT 'epoch',
    refreshing_until timestamptz NOT NULL DEFAULT 'epoch'
);
CREATE INDEX IF NOT EXISTS oncall_snapshots_due ON oncall_snapshots (next_refresh_at);
CREATE INDEX IF NOT EXISTS oncall_snapshots_tenant ON oncall_snapshots (tenant_id);

-- The last health check of each account: its lines as shown (status, measured value, what to
-- do), who asked (the settings page's button, the admin API, the scheduled upkeep), and when
-- the routing keys were last probed with a change event (at most daily on schedule).
CREATE TABLE IF NOT EXISTS health_reports (
    installation_id uuid PRIMARY KEY REFERENCES installations (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    checked_at timestamptz NOT NULL,
    trigger text NOT NULL CHECK (trigger IN ('settings', 'api', 'scheduled')),
    status text NOT NULL CHECK (status IN ('ok', 'warning', 'failed')),
    lines jsonb NOT NULL,
    not_checked text,
    keys_probed_at timestamptz
);
CREATE INDEX IF NOT EXISTS health_reports_tenant ON health_reports (tenant_id);
