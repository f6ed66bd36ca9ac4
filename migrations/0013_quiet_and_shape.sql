-- Maintenance windows, "don't page" rules and per-rule templates.
-- Written to apply cleanly twice: its number may change while migrations of other work land.

-- `suppressed`: accepted and recorded, deliberately not sent (a maintenance window, a "don't
-- page" rule, or the tenant's choice for alerts no rule matches); `last_error` says which.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_status_check;
ALTER TABLE events ADD CONSTRAINT events_status_check CHECK (status IN (
    'queued', 'sending', 'delivered', 'failed', 'held', 'cancelled', 'skipped', 'suppressed'));

-- A rule sends to its services (`page`) or accepts and pages nobody (`suppress`); its templates
-- shape the PagerDuty event ({"summary": "{{ labels.x }}", ...}, app/ingest/templates.py).
ALTER TABLE routes ADD COLUMN IF NOT EXISTS action text NOT NULL DEFAULT 'page';
ALTER TABLE routes DROP CONSTRAINT IF EXISTS routes_action_check;
ALTER TABLE routes ADD CONSTRAINT routes_action_check CHECK (action IN ('page', 'suppress'));
ALTER TABLE routes ADD COLUMN IF NOT EXISTS templates jsonb NOT NULL DEFAULT '{}'::jsonb;

-- What an alert that matches no rule gets: refused (422, as before) or accepted and suppressed.
CREATE TABLE IF NOT EXISTS routing_settings (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    unmatched text NOT NULL DEFAULT 'refuse' CHECK (unmatched IN ('refuse', 'suppress')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A window is one occurrence [starts_at, ends_at), or with `recurrence = 'weekly'` that
-- occurrence again every week at the same wall-clock times in `time_zone` (so 02:00 Berlin
-- stays 02:00 across DST), until `recurs_until` if set. `ended_early_at` cuts the occurrence it
-- falls in short (ending a window early); later occurrences are untouched.
CREATE TABLE IF NOT EXISTS maintenance_windows (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    recurrence text NOT NULL DEFAULT 'once' CHECK (recurrence IN ('once', 'weekly')),
    time_zone text NOT NULL DEFAULT 'UTC',
    recurs_until timestamptz,
    -- Empty: every service of the tenant.
    service_ids uuid[] NOT NULL DEFAULT '{}',
    conditions jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- What happens to alerts it suppressed that are still firing when it ends.
    on_end text NOT NULL DEFAULT 'drop' CHECK (on_end IN ('drop', 'send')),
    ended_early_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS maintenance_windows_tenant ON maintenance_windows (tenant_id);

-- Alerts a window suppressed, until the end of the occurrence that suppressed them: then the
-- upkeep sends them (on_end = send, still firing) or forgets them.
CREATE TABLE IF NOT EXISTS window_suppressions (
    window_id uuid NOT NULL REFERENCES maintenance_windows (id) ON DELETE CASCADE,
    alert_id uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    until timestamptz NOT NULL,
    PRIMARY KEY (window_id, alert_id)
);
CREATE INDEX IF NOT EXISTS window_suppressions_due ON window_suppressions (until);

-- The routing view holds windows and the unmatched choice: their changes notify like rules'
-- (migration 0011's function and trigger names).
DO $$
DECLARE
    wanted record;
    referencing text;
BEGIN
    FOR wanted IN
        SELECT * FROM (VALUES
            ('maintenance_windows', 'INSERT'), ('maintenance_windows', 'DELETE'),
            ('maintenance_windows', 'UPDATE'), ('maintenance_windows', 'TRUNCATE'),
            ('routing_settings', 'INSERT'), ('routing_settings', 'DELETE'),
            ('routing_settings', 'UPDATE'), ('routing_settings', 'TRUNCATE')
        ) AS t (tab, happening)
    LOOP
        referencing := CASE wanted.happening
            WHEN 'INSERT' THEN 'REFERENCING NEW TABLE AS new_rows'
            WHEN 'DELETE' THEN 'REFERENCING OLD TABLE AS old_rows'
            WHEN 'UPDATE' THEN 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
            ELSE ''
        END;
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I',
            wanted.tab || '_' || lower(wanted.happening) || '_notice', wanted.tab);
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I %s FOR EACH STATEMENT EXECUTE FUNCTION %I()',
            wanted.tab || '_' || lower(wanted.happening) || '_notice', wanted.happening,
            wanted.tab, referencing, 'pdconnect_notify_tenants');
    END LOOP;
END
$$;
