-- A browser session lives in a signed cookie, but only while its row here does: signing out
-- deletes the row, an operator's "sign out everywhere" deletes every row of the tenant, and
-- deleting the tenant deletes its rows with it. The cookie holds a random token; the row holds
-- only its sha256, so a copy of this table opens no session. A row expires after the same idle
-- time as the cookie and is renewed while the session is used (app/tenants/sessions.py).
-- Cookies issued before this migration name no row: their holders sign in again.
CREATE TABLE browser_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash text NOT NULL UNIQUE,
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX browser_sessions_tenant ON browser_sessions (tenant_id);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_at);

-- Incident links recorded from webhooks are shown as links on the event page: only http and
-- https ones are kept from now on (app/webhooks/payload.py), and those recorded before are
-- brought to the same rule.
UPDATE incident_states SET html_url = NULL
WHERE html_url IS NOT NULL AND html_url !~* '^https?://[^/?#\s]';
