-- The event store: cqrs-es's `events` table (postgres-es 0.5.0 names these columns in its
-- INSERT) plus generated columns that index fields of the stored JSON. The log is the
-- truth: rows are only ever inserted.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    event_id       text GENERATED ALWAYS AS (payload ->> 'event_id') STORED,
    alert_key      text GENERATED ALWAYS AS (payload ->> 'alert_key') STORED,
    resolves       text GENERATED ALWAYS AS (payload ->> 'resolves') STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- Idempotency's backstop: an event id is recorded at most once per device stream.
CREATE UNIQUE INDEX events_event_id ON events (aggregate_type, aggregate_id, event_id);
CREATE INDEX events_alert ON events (aggregate_type, aggregate_id, alert_key, sequence);
CREATE INDEX events_resolves ON events (aggregate_type, aggregate_id, resolves)
    WHERE resolves IS NOT NULL;

-- Unused (alert-ledger does not snapshot) but kept so postgres-es finds the schema it expects.
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
