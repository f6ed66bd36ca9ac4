-- An alert's life: per tenant and dedup key, the services its trigger went to and when it
-- opened, was acknowledged and resolved. Its acknowledge, resolve and re-trigger go to those
-- services whatever the rules say by then (a resolve usually carries no labels to route on).
-- A trigger after the resolve opens a new life, as it opens a new alert in PagerDuty, so one
-- (tenant, dedup key) has many rows over time and at most one open.

CREATE TABLE alerts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The key as it goes to PagerDuty (at most 255 characters; longer ones are hashed).
    dedup_key text NOT NULL,
    service_ids uuid[] NOT NULL DEFAULT '{}',
    state text NOT NULL DEFAULT 'triggered'
        CHECK (state IN ('triggered', 'acknowledged', 'resolved')),
    -- When each state began, as the sender said it (PagerDuty's own incident states arrive by
    -- webhook into incident_states).
    opened_at timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    resolved_at timestamptz,
    last_event_at timestamptz NOT NULL DEFAULT now(),
    summary text,
    severity text
);
CREATE UNIQUE INDEX alerts_open ON alerts (tenant_id, dedup_key) WHERE state <> 'resolved';
CREATE INDEX alerts_by_key ON alerts (tenant_id, dedup_key, opened_at DESC);

ALTER TABLE events ADD COLUMN alert_id uuid REFERENCES alerts (id) ON DELETE SET NULL;
CREATE INDEX events_alert ON events (alert_id) WHERE alert_id IS NOT NULL;

-- `skipped`: accepted and recorded, with nothing to send (an acknowledge or resolve of an alert
-- pdconnect never saw, which no rule routes: PagerDuty would do nothing with it either).
ALTER TABLE events DROP CONSTRAINT events_status_check;
ALTER TABLE events ADD CONSTRAINT events_status_check CHECK (status IN (
    'queued', 'sending', 'delivered', 'failed', 'held', 'cancelled', 'skipped'));
-- A skipped event goes to no service and so has no routing key.
ALTER TABLE events ALTER COLUMN routing_key_hash DROP NOT NULL;

-- Alerts already in the outbox get their life, so their resolves keep finding them after the
-- upgrade: the services of every trigger, and the state of the last event.
WITH keyed AS (
    SELECT tenant_id, dedup_key,
        array_remove(array_agg(DISTINCT service_id) FILTER (WHERE kind = 'trigger'), NULL)
            AS service_ids,
        min(created_at) FILTER (WHERE kind = 'trigger') AS opened_at,
        (array_agg(kind ORDER BY seq DESC))[1] AS last_kind,
        min(created_at) FILTER (WHERE kind = 'acknowledge') AS acknowledged_at,
        max(created_at) FILTER (WHERE kind = 'resolve') AS resolved_at,
        max(created_at) AS last_event_at
    FROM events
    WHERE dedup_key IS NOT NULL AND kind <> 'change'
    GROUP BY tenant_id, dedup_key
    HAVING count(*) FILTER (WHERE kind = 'trigger') > 0
)
INSERT INTO alerts (tenant_id, dedup_key, service_ids, state, opened_at, acknowledged_at,
    resolved_at, last_event_at)
SELECT tenant_id, dedup_key, service_ids,
    CASE last_kind WHEN 'resolve' THEN 'resolved' WHEN 'acknowledge' THEN 'acknowledged'
        ELSE 'triggered' END,
    opened_at, acknowledged_at,
    CASE WHEN last_kind = 'resolve' THEN resolved_at END,
    last_event_at
FROM keyed;

UPDATE events e SET alert_id = a.id
FROM alerts a
WHERE a.tenant_id = e.tenant_id AND a.dedup_key = e.dedup_key AND e.kind <> 'change';
