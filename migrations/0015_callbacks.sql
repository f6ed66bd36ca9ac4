-- Callbacks to the vendor's product: signed, durable, ordered per alert (app/callbacks).

-- A tenant's own receiver, in place of PDCONNECT_CALLBACK_URL. Secrets are Standard Webhooks
-- `whsec_` secrets, stored only encrypted; after a rotation the previous one keeps signing
-- beside the new one until `previous_secret_until`.
CREATE TABLE tenant_callbacks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL UNIQUE REFERENCES tenants (id) ON DELETE CASCADE,
    url text NOT NULL,
    secret_enc text NOT NULL,
    previous_secret_enc text,
    previous_secret_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Whether PDCONNECT_CALLBACK_URL is set, as the senders last said at start-up: callbacks are
-- recorded only for tenants that have somewhere to send them, and the code that records them
-- (inside other domains' transactions) has no configuration at hand.
CREATE TABLE callback_defaults (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    url_set boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE callbacks (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL UNIQUE,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type text NOT NULL,
    -- Callbacks of one key go out one at a time, in seq order: the alert's dedup key, or
    -- `connection:<installation id>`.
    order_key text NOT NULL,
    -- The exact bytes signed and sent, fixed when the callback is recorded.
    body text NOT NULL,
    -- What the callback was made from (PagerDuty's webhook event id), so a repeated webhook
    -- makes no second callback.
    source_key text,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    -- The fencing token: each claim takes a new one, and only its holder may settle the row.
    lease_token bigint NOT NULL DEFAULT 0,
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (tenant_id, source_key)
);
-- The claim reads only unfinished callbacks, heads of their keys first.
CREATE INDEX callbacks_unfinished ON callbacks (tenant_id, order_key, seq)
    WHERE status IN ('queued', 'sending');
CREATE INDEX callbacks_by_tenant ON callbacks (tenant_id, seq DESC);
CREATE INDEX callbacks_finished ON callbacks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE callback_attempts (
    id bigserial PRIMARY KEY,
    callback_id uuid NOT NULL REFERENCES callbacks (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,
    error text
);
CREATE INDEX callback_attempts_of ON callback_attempts (callback_id, id);
