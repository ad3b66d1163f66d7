-- Read models, version 1. Derived from the event log and rebuilt from it whenever the
-- projection version changes: never edit data here by hand, and never treat these
-- tables as the truth. Column meanings: docs/dashboard-contract.md.

CREATE TABLE alert_state
(
    device_id            text    NOT NULL,
    alert_key            text    NOT NULL,
    status               text    NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity             text,
    summary              text,
    since                text,
    last_alarm_at        text,
    last_recovery_at     text,
    episode_count        integer NOT NULL,
    alarm_count          integer NOT NULL,
    recovery_count       integer NOT NULL,
    stray_recovery_count integer NOT NULL,
    stream_version       integer NOT NULL,
    updated_at           text    NOT NULL,
    fold_state           text    NOT NULL,
    PRIMARY KEY (device_id, alert_key)
);
CREATE INDEX alert_state_by_status ON alert_state (status, device_id, alert_key);

CREATE TABLE alert_episodes
(
    device_id          text    NOT NULL,
    alert_key          text    NOT NULL,
    episode_number     integer NOT NULL,
    opened_at          text    NOT NULL,
    closed_at          text,
    duration_ms        integer,
    alarm_count        integer NOT NULL,
    severity           text,
    summary            text,
    opened_by_event_id text    NOT NULL,
    closed_by_event_id text,
    reconciled         integer NOT NULL,
    PRIMARY KEY (device_id, alert_key, episode_number)
);

CREATE TABLE device_summary
(
    device_id        text    NOT NULL PRIMARY KEY,
    alert_count      integer NOT NULL,
    firing_count     integer NOT NULL,
    stream_version   integer NOT NULL,
    last_recorded_at text,
    updated_at       text    NOT NULL
);
