-- A key's budget counted in slices of its window instead of send by send. Written to apply
-- cleanly twice: its number may change while migrations of other work land.
--
-- `sends` (0009) held the start time of every send in the budget window, so a key's row grew
-- with its budget: at PagerDuty's 120 a minute it was a kilobyte, but a key whose account has
-- the larger limits PagerDuty grants on request (up to 10 000 a minute) carried thousands of
-- timestamps, rewritten and sorted by every spend under the row's lock. That capped such a key
-- below its own budget. Now the window is cut into 64 slices (app/dispatch/store.py), and the
-- row keeps, for each slice that saw sends, when it began (`sent_starts`, Unix milliseconds,
-- ascending) and how many (`sent_counts`): at most 65 entries, whatever the budget.
--
-- A send is counted as if made when its slice began: it stays in the window for between one
-- slice less than the window and the window (61 to 62 seconds by default), always more than
-- PagerDuty's 60.
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS sent_starts bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS sent_counts integer[] NOT NULL DEFAULT '{}';

-- The budget carries over the upgrade: the sends still in the window, by the second they were
-- made in (a slice of a second).
UPDATE dispatch_keys k SET (sent_starts, sent_counts) = (
    SELECT COALESCE(array_agg(b.at ORDER BY b.at), '{}'), COALESCE(array_agg(b.n ORDER BY b.at), '{}')
    FROM (
        SELECT floor(extract(epoch FROM s))::bigint * 1000 AS at, count(*)::integer AS n
        FROM unnest(k.sends) AS s
        WHERE s > clock_timestamp() - interval '62 seconds'
        GROUP BY 1
    ) AS b
)
WHERE k.sent_starts = '{}' AND k.sends <> '{}';

-- The old column is no longer read or written by this version. It stays, as it was, so that a
-- worker of the previous version still running during an upgrade keeps its own count (the
-- two versions do not see each other's sends meanwhile; a 429 still rests the key).
