-- Every event gets a global position: its place in the order the ledger committed it.
-- SQLite has one writer at a time, so rowid order is commit order; a trigger copies it
-- into `position` (and `transaction_id`, so the global feed's SQL is the same on both
-- engines). Existing events are numbered in rowid order. Nothing is deleted or rewritten.
ALTER TABLE events ADD COLUMN position integer;
ALTER TABLE events ADD COLUMN transaction_id integer;
-- Times as stored (six fractional digits and Z) sort as text; occurred_at falls back to
-- recorded_at as the ledger rules say.
ALTER TABLE events ADD COLUMN recorded_at text
    GENERATED ALWAYS AS (json_extract(payload, '$.recorded_at')) VIRTUAL;
ALTER TABLE events ADD COLUMN occurred_at text
    GENERATED ALWAYS AS (coalesce(json_extract(payload, '$.occurred_at'), json_extract(payload, '$.recorded_at'))) VIRTUAL;
UPDATE events SET position = rowid, transaction_id = rowid;
CREATE UNIQUE INDEX events_position ON events (position);
CREATE INDEX events_feed ON events (transaction_id, position);
CREATE TRIGGER events_number AFTER INSERT ON events
BEGIN
    UPDATE events SET position = NEW.rowid, transaction_id = NEW.rowid WHERE rowid = NEW.rowid;
END;
