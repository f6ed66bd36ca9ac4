-- Written to apply cleanly twice: its number may change while migrations of other work land.
-- Analytics: hourly rollups of the outbox and of alert lives, folded in by a background job
-- (app/analytics/rollup.py) from what has finished since a watermark, so that reading a
-- tenant's figures for 30 days reads at most 720 rows per service, never the outbox; plus each
-- tenant's acknowledge and resolve targets (SLA) and the breaches found against them.

-- One row per tenant, service and hour. `service_id` is NULL for events that went to no
-- service (suppressed, skipped). No foreign key on the service: a removed service's history
-- stays in the figures. Every count is attributed to the hour its event was accepted or its
-- alert opened, whenever it was folded in.
CREATE TABLE IF NOT EXISTS analytics_hours (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    service_id uuid,
    hour timestamptz NOT NULL,
    -- Events, counted when they finish: trigger events (alerts sent by senders), those that
    -- were not sent on purpose, and how the ones to PagerDuty ended.
    alerts integer NOT NULL DEFAULT 0,
    suppressed integer NOT NULL DEFAULT 0,
    delivered integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    -- Alert lives, per service they went to (each opens an incident in that service).
    incidents integer NOT NULL DEFAULT 0,
    acknowledged integer NOT NULL DEFAULT 0,
    ack_seconds double precision NOT NULL DEFAULT 0,
    resolved integer NOT NULL DEFAULT 0,
    resolve_seconds double precision NOT NULL DEFAULT 0,
    resolved_unacknowledged integer NOT NULL DEFAULT 0,
    UNIQUE NULLS NOT DISTINCT (tenant_id, service_id, hour)
);
-- A window's read: one tenant's rows from an hour on.
CREATE INDEX IF NOT EXISTS analytics_hours_read ON analytics_hours (tenant_id, hour);

-- Time to page (acceptance to PagerDuty's 2xx) of trigger events, as a histogram with fixed
-- bounds (app/analytics/buckets.py): percentiles over any window come from summed buckets.
CREATE TABLE IF NOT EXISTS analytics_page_buckets (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    service_id uuid,
    hour timestamptz NOT NULL,
    bucket smallint NOT NULL,
    events integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, service_id, hour, bucket)
);
CREATE INDEX IF NOT EXISTS analytics_page_buckets_read ON analytics_page_buckets (tenant_id, hour);

-- Trigger events per alert source (the PD-CEF `source`, cut to 100 characters), per hour.
CREATE TABLE IF NOT EXISTS analytics_sources (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    hour timestamptz NOT NULL,
    source text NOT NULL,
    alerts integer NOT NULL,
    PRIMARY KEY (tenant_id, hour, source)
);

-- How far the fold has gone: everything finished (events) or changed (alert lives) up to
-- `folded_to` is in the rollups. One row; the fold locks it, so two processes never fold the
-- same rows twice. The retention sweep leaves alone what is not folded yet.
CREATE TABLE IF NOT EXISTS analytics_watermark (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    folded_to timestamptz NOT NULL
);
INSERT INTO analytics_watermark (folded_to) VALUES ('-infinity') ON CONFLICT DO NOTHING;

-- The fold reads alert lives changed since the watermark: any change of an open, acknowledged
-- or resolved time also sets last_event_at.
CREATE INDEX IF NOT EXISTS alerts_last_event ON alerts (last_event_at);

-- A tenant's targets per PagerDuty severity, in seconds (NULL: no target).
CREATE TABLE IF NOT EXISTS analytics_targets (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    severity text NOT NULL CHECK (severity IN ('critical', 'error', 'warning', 'info')),
    acknowledge_seconds integer CHECK (acknowledge_seconds > 0),
    resolve_seconds integer CHECK (resolve_seconds > 0),
    PRIMARY KEY (tenant_id, severity)
);

-- An alert that missed a target, found by the fold; kept after its alert life is swept.
-- `notified_at` is for the vendor callback that tells of new breaches.
CREATE TABLE IF NOT EXISTS analytics_breaches (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    alert_id uuid NOT NULL,
    target text NOT NULL CHECK (target IN ('acknowledge', 'resolve')),
    dedup_key text NOT NULL,
    summary text,
    severity text NOT NULL,
    service_ids uuid[] NOT NULL,
    opened_at timestamptz NOT NULL,
    target_seconds integer NOT NULL,
    -- How long it took; NULL while the alert was still waiting when the breach was found.
    took_seconds double precision,
    found_at timestamptz NOT NULL DEFAULT now(),
    notified_at timestamptz,
    UNIQUE (alert_id, target)
);
CREATE INDEX IF NOT EXISTS analytics_breaches_tenant ON analytics_breaches (tenant_id, opened_at);
CREATE INDEX IF NOT EXISTS analytics_breaches_new ON analytics_breaches (id) WHERE notified_at IS NULL;
