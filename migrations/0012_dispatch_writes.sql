-- What a delivered event writes, made cheaper. Written to apply cleanly twice: its number may
-- change while migrations of other work land.

-- Indexes nothing reads any more: a key's budget and its sends in flight are counted from its
-- row of dispatch_keys (0009), not from its attempts. Each cost an entry per attempt opened,
-- and made finishing an attempt (finished_at) write every index of the table again.
DROP INDEX IF EXISTS delivery_attempts_budget;
DROP INDEX IF EXISTS delivery_attempts_open;

-- Room on each page for a row's next version: an update that changes no indexed column
-- (an event's attempt counted, an attempt's answer recorded) then stays on its page and
-- writes no index entry (a HOT update). Pages written from now on keep it.
ALTER TABLE events SET (fillfactor = 90);
ALTER TABLE delivery_attempts SET (fillfactor = 90);
