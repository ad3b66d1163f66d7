-- Every event gets a global position and the id of the transaction that wrote it.
-- Positions come from a sequence and so commit out of order; the global feed therefore
-- orders by (transaction_id, position) and only serves transactions older than every
-- transaction still running (pg_snapshot_xmin), so a follower never skips an event that
-- commits late. Existing events keep their rows; nothing is deleted or rewritten.
ALTER TABLE events ADD COLUMN position bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE events ADD COLUMN transaction_id bigint NOT NULL
    DEFAULT (pg_current_xact_id()::text::bigint);
-- Times as stored (six fractional digits and Z) sort as text; occurred_at falls back to
-- recorded_at as the ledger rules say.
ALTER TABLE events ADD COLUMN recorded_at text
    GENERATED ALWAYS AS (payload ->> 'recorded_at') STORED;
ALTER TABLE events ADD COLUMN occurred_at text
    GENERATED ALWAYS AS (coalesce(payload ->> 'occurred_at', payload ->> 'recorded_at')) STORED;
CREATE UNIQUE INDEX events_position ON events (position);
CREATE INDEX events_feed ON events (transaction_id, position);
