-- How each event found its service, in words for the delivery history: the routing rule that
-- matched, the service the alert named, the tenant's only service, or its alert's earlier
-- trigger. NULL for events written before this was kept (and for ones with no service).
ALTER TABLE events ADD COLUMN IF NOT EXISTS routed_by text;
