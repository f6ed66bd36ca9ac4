-- Incident states that never go stale, and notes to and from PagerDuty.
-- Written to apply cleanly twice: its number may change while migrations of other work land.

-- When reconciliation last looked at an open alert (app/incidents/reconcile.py). An alert is
-- due once neither its events nor a look have moved for PDCONNECT_RECONCILE_AFTER;
-- 'infinity' once PagerDuty's incidents of it are known resolved (a new trigger clears it).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS reconciled_at timestamptz;
CREATE INDEX IF NOT EXISTS alerts_reconcile_due ON alerts ((GREATEST(last_event_at, reconciled_at)))
    WHERE state <> 'resolved';

-- A note's webhook names only its incident.
CREATE INDEX IF NOT EXISTS incident_states_incident ON incident_states (incident_id);

-- When the subscription watch last read a subscription from PagerDuty.
ALTER TABLE webhook_subscriptions ADD COLUMN IF NOT EXISTS checked_at timestamptz;

-- The PagerDuty user whose token an installation holds, as GET /users/me tells it: notes are
-- added in that user's name (createIncidentNote's `From` header). Kept per user id, so a
-- reconnect by someone else is noticed.
CREATE TABLE IF NOT EXISTS installation_users (
    installation_id uuid PRIMARY KEY REFERENCES installations (id) ON DELETE CASCADE,
    pd_user_id text NOT NULL,
    name text NOT NULL,
    email text NOT NULL,
    learned_at timestamptz NOT NULL DEFAULT now()
);

-- The notes on an alert's PagerDuty incidents: added through the API (`api`) or in PagerDuty
-- (`pagerduty`, from incident.annotated webhooks). Once per (incident, PagerDuty note id).
CREATE TABLE IF NOT EXISTS alert_notes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    alert_id uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    service_id uuid REFERENCES pd_services (id) ON DELETE SET NULL,
    incident_id text NOT NULL,
    pd_note_id text NOT NULL,
    content text NOT NULL,
    author text,
    origin text NOT NULL CHECK (origin IN ('api', 'pagerduty')),
    created_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, pd_note_id)
);
CREATE INDEX IF NOT EXISTS alert_notes_alert ON alert_notes (alert_id, created_at);
