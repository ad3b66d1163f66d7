-- When the episode a firing message (or reminder) announces opened, as the ledger's
-- order placed it at scheduling time. An alarm's place in that order never changes, but
-- late history can renumber episodes: a resolved message is only sent when the episode
-- that closed contains the stretch that was announced under its number. NULL on rows
-- written before this column existed (the number alone decides for them).
ALTER TABLE notifications ADD COLUMN episode_opened_at timestamptz;
