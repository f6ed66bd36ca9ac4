-- Change notices: every statement that changes what a web process keeps in memory for routing
-- and authentication (a tenant's services, rules and severity map, its ingest keys) sends
-- pg_notify('pdconnect_changes', <tenant id>) once per tenant it touched, delivered at commit
-- (app/db/changes.py drops that tenant's entries). Triggers rather than calls in the store
-- modules: no writer, present or future, can forget one.
-- Statement-level with transition tables: a statement touching many rows sends one notice per
-- tenant, not one per row. Updates notify only when a column the caches hold changed, so the
-- writes that stamp a key's last use or re-encrypt a routing key stay silent.
-- TRUNCATE has no transition tables: it notifies '*', which drops every cache entry.
-- Written to apply cleanly twice: its number may change while migrations of other work land.

CREATE OR REPLACE FUNCTION pdconnect_notify_tenants() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch names only the transition tables its trigger declares.
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('pdconnect_changes', t::text)
        FROM (SELECT DISTINCT tenant_id AS t FROM new_rows) AS touched;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('pdconnect_changes', t::text)
        FROM (SELECT DISTINCT tenant_id AS t FROM old_rows) AS touched;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM pg_notify('pdconnect_changes', t::text)
        FROM (
            SELECT tenant_id AS t FROM new_rows UNION SELECT tenant_id FROM old_rows
        ) AS touched;
    ELSE
        PERFORM pg_notify('pdconnect_changes', '*');
    END IF;
    RETURN NULL;
END
$$;

-- pd_services: what a RoutingView holds of a service (app/ingest/store.py routable_services).
CREATE OR REPLACE FUNCTION pdconnect_notify_services_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pdconnect_changes', t::text)
    FROM (
        SELECT DISTINCT unnest(ARRAY[o.tenant_id, n.tenant_id]) AS t
        FROM old_rows AS o JOIN new_rows AS n USING (id)
        WHERE (o.tenant_id, o.pd_service_id, o.name, o.kind, o.api_version, o.health,
               o.routing_key_hash)
              IS DISTINCT FROM
              (n.tenant_id, n.pd_service_id, n.name, n.kind, n.api_version, n.health,
               n.routing_key_hash)
    ) AS touched;
    RETURN NULL;
END
$$;

-- ingest_keys: what authenticates (its hash, whether it is revoked, its tenant); not last_used_at.
CREATE OR REPLACE FUNCTION pdconnect_notify_keys_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pdconnect_changes', t::text)
    FROM (
        SELECT DISTINCT unnest(ARRAY[o.tenant_id, n.tenant_id]) AS t
        FROM old_rows AS o JOIN new_rows AS n USING (id)
        WHERE (o.tenant_id, o.key_hash, o.revoked_at)
              IS DISTINCT FROM (n.tenant_id, n.key_hash, n.revoked_at)
    ) AS touched;
    RETURN NULL;
END
$$;

-- tenants: the severity map, and the tenant itself (its keys, services and rules go with it by
-- cascade, and notify on their own as well).
CREATE OR REPLACE FUNCTION pdconnect_notify_tenants_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('pdconnect_changes', id::text) FROM old_rows;
    ELSE
        PERFORM pg_notify('pdconnect_changes', n.id::text)
        FROM old_rows AS o JOIN new_rows AS n USING (id)
        WHERE o.severity_map IS DISTINCT FROM n.severity_map;
    END IF;
    RETURN NULL;
END
$$;

-- Four triggers on each table (after INSERT, DELETE, UPDATE and TRUNCATE), named
-- <table>_<event>_notice; the function each calls is in the list below. Made in a loop, so that
-- every table gets the same four, each dropped first (the migration applies cleanly twice).
DO $$
DECLARE
    wanted record;
    referencing text;
BEGIN
    FOR wanted IN
        SELECT * FROM (VALUES
            ('pd_services', 'INSERT', 'pdconnect_notify_tenants'),
            ('pd_services', 'DELETE', 'pdconnect_notify_tenants'),
            ('pd_services', 'UPDATE', 'pdconnect_notify_services_updated'),
            ('pd_services', 'TRUNCATE', 'pdconnect_notify_tenants'),
            ('routes', 'INSERT', 'pdconnect_notify_tenants'),
            ('routes', 'DELETE', 'pdconnect_notify_tenants'),
            ('routes', 'UPDATE', 'pdconnect_notify_tenants'),
            ('routes', 'TRUNCATE', 'pdconnect_notify_tenants'),
            ('ingest_keys', 'INSERT', 'pdconnect_notify_tenants'),
            ('ingest_keys', 'DELETE', 'pdconnect_notify_tenants'),
            ('ingest_keys', 'UPDATE', 'pdconnect_notify_keys_updated'),
            ('ingest_keys', 'TRUNCATE', 'pdconnect_notify_tenants'),
            -- A tenant's rows are never inserted with anything cached yet.
            ('tenants', 'DELETE', 'pdconnect_notify_tenants_changed'),
            ('tenants', 'UPDATE', 'pdconnect_notify_tenants_changed'),
            ('tenants', 'TRUNCATE', 'pdconnect_notify_tenants')
        ) AS t (tab, happening, func)
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
            wanted.tab, referencing, wanted.func);
    END LOOP;
END
$$;
