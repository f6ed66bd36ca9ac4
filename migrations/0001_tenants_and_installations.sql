-- Tenants, their ingest keys and sign-in links; PagerDuty installations and the services they
-- route to; the audit log. Secrets are stored only encrypted (*_enc, Fernet) or as keyed
-- hashes (*_hash); see app/crypto.py.

CREATE TABLE tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    external_id text UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ingest_keys (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The first characters of the key, enough for an admin to tell keys apart.
    prefix text NOT NULL,
    key_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX ingest_keys_tenant ON ingest_keys (tenant_id);

-- A sign-in link is signed (itsdangerous) and names one row here; using it stamps used_at,
-- so a link works once.
CREATE TABLE login_links (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX login_links_tenant ON login_links (tenant_id);

-- One PagerDuty account of one tenant, as connected by one method. account_key identifies the
-- account within the method: PagerDuty's account id for OAuth, the subdomain for Simple
-- Install (which reports no account id), 'manual' for the tenant's pasted keys.
CREATE TABLE installations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    method text NOT NULL CHECK (method IN ('oauth', 'simple_install', 'manual')),
    account_key text NOT NULL,
    account_id text,
    subdomain text,
    account_name text,
    region text NOT NULL CHECK (region IN ('us', 'eu')),
    api_url text,
    events_url text NOT NULL,
    pd_user_id text,
    access_token_enc text,
    refresh_token_enc text,
    token_expires_at timestamptz,
    scopes text,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reconnect')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, method, account_key)
);

-- A routing target: a PagerDuty service (or ruleset) and the routing key that reaches it.
CREATE TABLE pd_services (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    installation_id uuid NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    -- PagerDuty's id of the service or ruleset; NULL for a pasted key.
    pd_service_id text,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    kind text NOT NULL DEFAULT 'service',
    integration_id text,
    -- True when pdconnect created the integration (and so may delete it on disconnect).
    created_by_us boolean NOT NULL DEFAULT false,
    routing_key_enc text NOT NULL,
    routing_key_hash text NOT NULL,
    api_version text NOT NULL DEFAULT 'v2' CHECK (api_version IN ('v1', 'v2')),
    rate_limit_per_minute integer NOT NULL DEFAULT 120 CHECK (rate_limit_per_minute > 0),
    health text NOT NULL DEFAULT 'healthy' CHECK (health IN ('healthy', 'unhealthy', 'gone')),
    health_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (installation_id, pd_service_id),
    UNIQUE (tenant_id, routing_key_hash)
);
CREATE INDEX pd_services_tenant ON pd_services (tenant_id);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor text NOT NULL,
    action text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, created_at DESC);
