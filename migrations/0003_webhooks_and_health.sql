-- PagerDuty webhooks back to us, incident states, and the upkeep of connections: token refresh
-- and integration health checks.

-- A v3 webhook subscription pdconnect created for one service of an installation. Our id is
-- the path of its receiver URL; PagerDuty's secret is stored only encrypted.
CREATE TABLE webhook_subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    installation_id uuid NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    pd_service_id text NOT NULL,
    pd_subscription_id text NOT NULL,
    secret_enc text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (installation_id, pd_service_id)
);

-- X-Webhook-Id of every delivery taken, so a repeated delivery is recorded once.
CREATE TABLE webhook_deliveries (
    webhook_id text PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

-- What PagerDuty says became of the alert behind our events: one row per (service, dedup key).
CREATE TABLE incident_states (
    service_id uuid NOT NULL REFERENCES pd_services (id) ON DELETE CASCADE,
    dedup_key text NOT NULL,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    incident_id text NOT NULL,
    incident_number integer,
    status text NOT NULL,
    title text,
    html_url text,
    changed_by text,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (service_id, dedup_key)
);

ALTER TABLE installations ADD COLUMN next_check_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE installations ADD COLUMN status_reason text;
