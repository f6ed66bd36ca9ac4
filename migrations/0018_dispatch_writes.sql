-- What a delivered event writes, made cheaper. Written to apply cleanly twice: its number may
-- change while migrations of other work land.

-- An index the dispatcher no longer reads: a key's sends in flight are counted from its row
-- of dispatch_keys (0009), not from its attempts. Its predicate names finished_at, so it made
-- finishing an attempt write every index of the table again. The (routing_key_hash,
-- started_at) index stays: the connection health check counts a key's last 24 hours through
-- it (app/installations/health_store.py), and neither of its columns changes when an attempt
-- finishes, so it does not stop that update from being HOT.
DROP INDEX IF EXISTS delivery_attempts_open;

-- Room on each page for a row's next version: an update that changes no indexed column
-- (an event's attempt counted, an attempt's answer recorded) then stays on its page and
-- writes no index entry (a HOT update). Pages written from now on keep it.
ALTER TABLE events SET (fillfactor = 90);
ALTER TABLE delivery_attempts SET (fillfactor = 90);
