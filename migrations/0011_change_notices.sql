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

DROP TRIGGER IF EXISTS pd_services_inserted_notice ON pd_services;
CREATE TRIGGER pd_services_inserted_notice AFTER INSERT ON pd_services
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
DROP TRIGGER IF EXISTS pd_services_deleted_notice ON pd_services;
CREATE TRIGGER pd_services_deleted_notice AFTER DELETE ON pd_services
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
DROP TRIGGER IF EXISTS pd_services_updated_notice ON pd_services;
CREATE TRIGGER pd_services_updated_notice AFTER UPDATE ON pd_services
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_services_updated();
DROP TRIGGER IF EXISTS pd_services_truncated_notice ON pd_services;
CREATE TRIGGER pd_services_truncated_notice AFTER TRUNCATE ON pd_services
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();

DROP TRIGGER IF EXISTS routes_inserted_notice ON routes;
CREATE TRIGGER routes_inserted_notice AFTER INSERT ON routes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
DROP TRIGGER IF EXISTS routes_deleted_notice ON routes;
CREATE TRIGGER routes_deleted_notice AFTER DELETE ON routes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
DROP TRIGGER IF EXISTS routes_updated_notice ON routes;
CREATE TRIGGER routes_updated_notice AFTER UPDATE ON routes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
DROP TRIGGER IF EXISTS routes_truncated_notice ON routes;
CREATE TRIGGER routes_truncated_notice AFTER TRUNCATE ON routes
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();

DROP TRIGGER IF EXISTS ingest_keys_inserted_notice ON ingest_keys;
CREATE TRIGGER ingest_keys_inserted_notice AFTER INSERT ON ingest_keys
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
DROP TRIGGER IF EXISTS ingest_keys_deleted_notice ON ingest_keys;
CREATE TRIGGER ingest_keys_deleted_notice AFTER DELETE ON ingest_keys
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
DROP TRIGGER IF EXISTS ingest_keys_updated_notice ON ingest_keys;
CREATE TRIGGER ingest_keys_updated_notice AFTER UPDATE ON ingest_keys
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_keys_updated();
DROP TRIGGER IF EXISTS ingest_keys_truncated_notice ON ingest_keys;
CREATE TRIGGER ingest_keys_truncated_notice AFTER TRUNCATE ON ingest_keys
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();

DROP TRIGGER IF EXISTS tenants_updated_notice ON tenants;
CREATE TRIGGER tenants_updated_notice AFTER UPDATE ON tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants_changed();
DROP TRIGGER IF EXISTS tenants_deleted_notice ON tenants;
CREATE TRIGGER tenants_deleted_notice AFTER DELETE ON tenants
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants_changed();
DROP TRIGGER IF EXISTS tenants_truncated_notice ON tenants;
CREATE TRIGGER tenants_truncated_notice AFTER TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION pdconnect_notify_tenants();
