-- The notification outbox. Rows are written in the same transaction as the projection
-- change that causes them (an episode opening or closing), or by the dispatcher when a
-- reminder falls due; the dispatcher claims due rows, decides from the alert's state at
-- send time whether to deliver, and records every attempt. Unlike the read models this
-- is not derived from the log: it is what was said to whom, so it is never rebuilt.
CREATE TABLE notifications
(
    id               text    NOT NULL PRIMARY KEY, -- the idempotency key receivers see
    device_id        text    NOT NULL,
    alert_key        text    NOT NULL,
    episode_number   integer NOT NULL,
    message          text    NOT NULL CHECK (message IN ('firing', 'reminder', 'resolved')),
    reminder_number  integer NOT NULL,
    route            text    NOT NULL,
    receiver         text    NOT NULL,
    status           text    NOT NULL
        CHECK (status IN ('pending', 'delivering', 'delivered', 'suppressed', 'dead')),
    reason           text,
    created_at       text NOT NULL,
    due_at           text NOT NULL,
    next_attempt_at  text NOT NULL,
    attempts         integer NOT NULL,
    last_status_code integer,
    last_error       text,
    claim_token      text,
    lease_until      text,
    finished_at      text
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_by_alert ON notifications (device_id, alert_key, episode_number);
CREATE INDEX notifications_by_creation ON notifications (created_at, id);

CREATE TABLE notification_attempts
(
    notification_id text    NOT NULL REFERENCES notifications (id),
    attempt         integer NOT NULL,
    started_at      text NOT NULL,
    duration_ms     integer,
    status_code     integer,
    error           text,
    outcome         text    NOT NULL
        CHECK (outcome IN ('in_flight', 'delivered', 'retry', 'failed', 'abandoned')),
    PRIMARY KEY (notification_id, attempt)
);
