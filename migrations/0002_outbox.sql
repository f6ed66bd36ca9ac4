-- Routing rules, the outbox of events for PagerDuty, every delivery attempt, and the state of
-- each routing key's budget. Bodies never hold a routing key: the dispatcher reads the key
-- (encrypted, in pd_services) at send time.

-- A tenant's overrides of the severity vocabulary: {"overrides": {"sev0": "critical"}, "default": "error"}.
ALTER TABLE tenants ADD COLUMN severity_map jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE routes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position integer NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    conditions jsonb NOT NULL DEFAULT '[]'::jsonb,
    service_ids uuid[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, position) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Acceptance order: events of one (routing key, dedup key) are sent in this order.
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    service_id uuid REFERENCES pd_services (id) ON DELETE SET NULL,
    routing_key_hash text NOT NULL,
    dedup_key text,
    kind text NOT NULL CHECK (kind IN ('trigger', 'acknowledge', 'resolve', 'change')),
    api text NOT NULL CHECK (api IN ('v2', 'v1')),
    body jsonb NOT NULL,
    notes text[] NOT NULL DEFAULT '{}',
    source text NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'held', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    last_error text,
    pd_errors jsonb
);
CREATE INDEX events_due ON events (tenant_id, seq) WHERE status IN ('queued', 'sending');
CREATE INDEX events_pending_by_key ON events (routing_key_hash, dedup_key, seq)
    WHERE status IN ('queued', 'sending', 'held');
CREATE INDEX events_tenant ON events (tenant_id, seq DESC);
CREATE INDEX events_service ON events (service_id, status);

CREATE TABLE delivery_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    routing_key_hash text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    latency_ms integer,
    http_status integer,
    outcome text CHECK (outcome IN (
        'delivered', 'rejected', 'key_rejected', 'rate_limited', 'retry', 'abandoned')),
    response jsonb,
    error text
);
CREATE INDEX delivery_attempts_event ON delivery_attempts (event_id, id);
-- The rate budget counts a key's attempts over the last minute.
CREATE INDEX delivery_attempts_budget ON delivery_attempts (routing_key_hash, started_at);

-- One row per routing key the dispatcher has used: its pause (budget spent, or PagerDuty said
-- 429) and how far its 429 backoff has grown. Locking this row serialises budget decisions
-- for the key across every worker.
CREATE TABLE dispatch_keys (
    routing_key_hash text PRIMARY KEY,
    paused_until timestamptz NOT NULL DEFAULT '-infinity',
    backoff_level integer NOT NULL DEFAULT 0,
    key_rejections integer NOT NULL DEFAULT 0
);
