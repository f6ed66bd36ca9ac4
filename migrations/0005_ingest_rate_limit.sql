-- Each ingest key's request budget, shared by every web process of a deployment (see
-- app/tenants/ratelimit.py). The budget is a GCRA "theoretical arrival time": one timestamp a
-- key, moved forward by one request's share of the rate on every accepted request.
-- UNLOGGED: no write reaches the WAL, which matters on a row written on every request; a crash
-- empties the table, which only forgives the requests of the last few seconds.
CREATE UNLOGGED TABLE ingest_key_budgets (
    key_id uuid PRIMARY KEY REFERENCES ingest_keys (id) ON DELETE CASCADE,
    tat timestamptz NOT NULL,
    -- Whether the request that last touched the row was let through: the one statement that
    -- spends the budget reads its verdict back from here.
    last_allowed boolean NOT NULL
);
