-- The budget's slices (app/dispatch/store.py) in columns of their own. Written to apply
-- cleanly twice: its number may change while migrations of other work land.
--
-- Version 20 exists in two forms in deployed databases. One release counted a key's budget per
-- second of its window (`sent_seconds`, Unix seconds, with `sent_counts`); the next counted it
-- in 64 slices of the window (`sent_starts`, Unix milliseconds, with the same `sent_counts`)
-- and shipped as version 20 too. A database migrated by the first has version 20 recorded, so it
-- never ran the second and has no `sent_starts`. This version reads and writes `slice_starts`
-- and `slice_counts`, filled here from whichever form the database has, so that both (and a new
-- database) end alike.
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS slice_starts bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE dispatch_keys ADD COLUMN IF NOT EXISTS slice_counts integer[] NOT NULL DEFAULT '{}';

-- The sends still counted carry over the upgrade. A second's sends are counted from the
-- second's start, as the slices count a send from its slice's start: they leave the window at
-- most a second sooner than before, still more than PagerDuty's 60 seconds after they were made.
-- PL/pgSQL resolves a statement's columns only when it runs it: the branch for the form this
-- database does not have is never planned.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'dispatch_keys'
          AND column_name = 'sent_starts'
    ) THEN
        UPDATE dispatch_keys SET slice_starts = sent_starts, slice_counts = sent_counts
        WHERE slice_starts = '{}' AND sent_starts <> '{}';
    END IF;
    IF EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'dispatch_keys'
          AND column_name = 'sent_seconds'
    ) THEN
        UPDATE dispatch_keys SET
            slice_starts = ARRAY(
                SELECT s.second * 1000 FROM unnest(sent_seconds) WITH ORDINALITY AS s (second, i)
                ORDER BY s.i),
            slice_counts = sent_counts
        WHERE slice_starts = '{}' AND sent_seconds <> '{}';
    END IF;
END $$;

-- The earlier columns are no longer read or written by this version. They stay, as they are,
-- so that a worker of an earlier release still running during an upgrade keeps its own count
-- (the versions do not see each other's sends meanwhile; a 429 still rests the key).
