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
    since                timestamptz,
    last_alarm_at        timestamptz,
    last_recovery_at     timestamptz,
    episode_count        bigint NOT NULL,
    alarm_count          bigint NOT NULL,
    recovery_count       bigint NOT NULL,
    stray_recovery_count bigint NOT NULL,
    stream_version       bigint NOT NULL,
    updated_at           timestamptz    NOT NULL,
    fold_state           jsonb    NOT NULL,
    PRIMARY KEY (device_id, alert_key)
);
CREATE INDEX alert_state_by_status ON alert_state (status, device_id, alert_key);

CREATE TABLE alert_episodes
(
    device_id          text    NOT NULL,
    alert_key          text    NOT NULL,
    episode_number     bigint NOT NULL,
    opened_at          timestamptz    NOT NULL,
    closed_at          timestamptz,
    duration_ms        bigint,
    alarm_count        bigint NOT NULL,
    severity           text,
    summary            text,
    opened_by_event_id text    NOT NULL,
    closed_by_event_id text,
    reconciled         boolean NOT NULL,
    PRIMARY KEY (device_id, alert_key, episode_number)
);

CREATE TABLE device_summary
(
    device_id        text    NOT NULL PRIMARY KEY,
    alert_count      bigint NOT NULL,
    firing_count     bigint NOT NULL,
    stream_version   bigint NOT NULL,
    last_recorded_at timestamptz,
    updated_at       timestamptz    NOT NULL
);
