//! The outbox tables (`migrations/*/0003_notifications.sql`), written once for both
//! engines: scheduling messages inside a projection transaction, claiming due ones for
//! delivery (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so each message goes to one of
//! several servers), recording attempts, and reading the delivery log.

use std::future::Future;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{Pool, Transaction};

use super::plan::{DeliveryStatus, EpisodeSpan, MessageKind};
use crate::domain::fold::AlertState;
use crate::engine_impl;
use crate::store::StoreError;

/// A message to schedule.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub device_id: String,
    pub alert_key: String,
    pub episode: i64,
    pub kind: MessageKind,
    pub reminder: i64,
    pub route: String,
    pub receiver: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// For a firing message or reminder: when the announced episode opened.
    pub episode_opened_at: Option<DateTime<Utc>>,
}

/// A claimed message, as the dispatcher needs it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedRow {
    pub id: String,
    pub device_id: String,
    pub alert_key: String,
    pub episode_number: i64,
    pub message: String,
    pub reminder_number: i64,
    pub route: String,
    pub receiver: String,
    pub attempts: i64,
    pub episode_opened_at: Option<DateTime<Utc>>,
}

/// What became of an episode's firing message, for deciding its resolved message.
#[derive(Clone, Debug, PartialEq)]
pub struct FiringAnnouncement {
    pub status: DeliveryStatus,
    /// When the announced episode opened (`None` on rows from before migration 0004).
    pub episode_opened_at: Option<DateTime<Utc>>,
    /// Some attempt may have reached the receiver although none was confirmed: it timed
    /// out or lost its answer after the request was sent, or its server died mid-send.
    pub maybe_seen: bool,
}

/// Could this attempt have put the message in front of people without our knowing?
/// Only an HTTP answer (whatever its code) or a connection that was never made says no.
pub fn attempt_may_have_reached(
    outcome: &str,
    status_code: Option<i64>,
    error: Option<&str>,
) -> bool {
    match outcome {
        "delivered" | "in_flight" | "abandoned" => true,
        _ => {
            status_code.is_none()
                && !error.is_some_and(|e| e.starts_with(super::dispatcher::NOT_CONNECTED))
        }
    }
}

/// One row of the delivery log.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub device_id: String,
    pub alert_key: String,
    pub episode_number: i64,
    pub message: String,
    pub reminder_number: i64,
    pub route: String,
    pub receiver: String,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub attempt_log: Vec<AttemptRow>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    #[serde(skip)]
    pub notification_id: String,
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub outcome: String,
}

/// Facts about an episode for rendering a message about it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EpisodeFacts {
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub severity: Option<String>,
    pub summary: Option<String>,
}

/// How a claimed message ends this round.
#[derive(Clone, Debug)]
pub struct Finish {
    pub status: DeliveryStatus,
    pub reason: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The attempt this round made, if it made one.
    pub attempt: Option<Attempt>,
    pub finished_at: Option<DateTime<Utc>>,
    /// A reminder to schedule in the same transaction (after a delivered firing message
    /// or reminder).
    pub then_schedule: Option<NewMessage>,
}

/// The result of one HTTP attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub number: i64,
    /// `delivered`, `retry` or `failed`.
    pub outcome: &'static str,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// Delivery-log filters; `None` takes all.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub device_id: Option<String>,
    pub alert_key: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub after: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

const CLAIMED_COLUMNS: &str = "id, device_id, alert_key, episode_number, message, \
    reminder_number, route, receiver, attempts, episode_opened_at";
const LOG_COLUMNS: &str = "id, device_id, alert_key, episode_number, message, reminder_number, \
    route, receiver, status, reason, created_at, due_at, \
    CASE WHEN status IN ('pending', 'delivering') THEN next_attempt_at END AS next_attempt_at, \
    attempts, last_status_code, last_error, finished_at";
const LOG_FILTER: &str = "($1 IS NULL OR device_id = $1) AND ($2 IS NULL OR alert_key = $2) \
    AND ($3 IS NULL OR status = $3) \
    AND ($4 IS NULL OR created_at > $4 OR (created_at = $4 AND id > $5))";

/// An attempt still `in_flight` when its message is claimed again, or finished without
/// an attempt of its own, belongs to a server that died mid-delivery.
const ABANDON_IN_FLIGHT: &str = "UPDATE notification_attempts SET outcome = 'abandoned', \
    error = 'the server delivering it stopped before it finished' \
    WHERE notification_id = $1 AND outcome = 'in_flight'";

/// Outbox writes inside a projection transaction.
pub trait OutboxTx: Send {
    /// Schedule a message; false when one with this idempotency key exists already.
    fn schedule<'a>(
        &'a mut self,
        message: &'a NewMessage,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send + 'a;
    /// The episode stopped firing: its first message and reminders still waiting will
    /// never apply, so they are closed now rather than when they fall due.
    fn suppress_waiting<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
        episode: i64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
    /// The route and receiver an episode's firing message went to, if it was scheduled.
    fn firing_route<'a>(
        &'a mut self,
        device_id: &'a str,
        alert_key: &'a str,
        episode: i64,
    ) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send + 'a;
}

engine_impl! {
    impl<'c> OutboxTx for Transaction<'c, DB> {
        async fn schedule<'a>(&'a mut self, message: &'a NewMessage) -> Result<bool, StoreError> {
            let result = sqlx::query(
                "INSERT INTO notifications (id, device_id, alert_key, episode_number, message, \
                   reminder_number, route, receiver, status, created_at, due_at, \
                   next_attempt_at, attempts, episode_opened_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $10, 0, $11) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&message.id)
            .bind(&message.device_id)
            .bind(&message.alert_key)
            .bind(message.episode)
            .bind(message.kind.as_str())
            .bind(message.reminder)
            .bind(&message.route)
            .bind(&message.receiver)
            // Microseconds, as PostgreSQL keeps them: delivery-log cursors compare equal.
            .bind(message.created_at.trunc_subsecs(6))
            .bind(message.due_at.trunc_subsecs(6))
            .bind(message.episode_opened_at)
            .execute(&mut **self)
            .await?;
            Ok(result.rows_affected() == 1)
        }

        async fn suppress_waiting<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str, episode: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE notifications SET status = 'suppressed', \
                   reason = 'resolved before it was sent', finished_at = $4 \
                 WHERE device_id = $1 AND alert_key = $2 AND episode_number = $3 \
                   AND message IN ('firing', 'reminder') AND status = 'pending'",
            )
            .bind(device_id)
            .bind(alert_key)
            .bind(episode)
            .bind(now.trunc_subsecs(6))
            .execute(&mut **self)
            .await?;
            Ok(())
        }

        async fn firing_route<'a>(&'a mut self, device_id: &'a str, alert_key: &'a str, episode: i64) -> Result<Option<(String, String)>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT route, receiver FROM notifications \
                 WHERE device_id = $1 AND alert_key = $2 AND episode_number = $3 \
                   AND message = 'firing' ORDER BY created_at DESC, id LIMIT 1",
            )
            .bind(device_id)
            .bind(alert_key)
            .bind(episode)
            .fetch_optional(&mut **self)
            .await?)
        }
    }
}

/// Dispatcher and delivery-log operations on a pool.
pub trait Outbox {
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        token: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<ClaimedRow>, StoreError>> + Send;
    fn next_due(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;
    fn alert_state(
        &self,
        device_id: &str,
        alert_key: &str,
    ) -> impl Future<Output = Result<Option<AlertState>, StoreError>> + Send;
    /// Every firing message scheduled under this episode number (late history can give
    /// a number to more than one stretch of firing).
    fn firing_announcements(
        &self,
        device_id: &str,
        alert_key: &str,
        episode: i64,
    ) -> impl Future<Output = Result<Vec<FiringAnnouncement>, StoreError>> + Send;
    /// The alert's episodes as the read model holds them now.
    fn episode_spans(
        &self,
        device_id: &str,
        alert_key: &str,
    ) -> impl Future<Output = Result<Vec<EpisodeSpan>, StoreError>> + Send;
    fn episode_facts(
        &self,
        device_id: &str,
        alert_key: &str,
        episode: i64,
    ) -> impl Future<Output = Result<Option<EpisodeFacts>, StoreError>> + Send;
    /// Count an attempt before sending; false when the claim was lost (lease expired and
    /// another server took the message), in which case nothing may be sent.
    fn start_attempt(
        &self,
        id: &str,
        token: &str,
        attempt: i64,
        started_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn finish(
        &self,
        id: &str,
        token: &str,
        finish: Finish,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delivery_log(
        &self,
        filter: &LogFilter,
    ) -> impl Future<Output = Result<Vec<MessageRow>, StoreError>> + Send;
}

/// `FOR UPDATE SKIP LOCKED` where it exists: SQLite has one writer at a time anyway.
trait ClaimLock {
    const SKIP_LOCKED: &'static str;
}
impl ClaimLock for sqlx::Sqlite {
    const SKIP_LOCKED: &'static str = "";
}
impl ClaimLock for sqlx::Postgres {
    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";
}

engine_impl! {
    impl Outbox for Pool<DB> {
        async fn claim_due(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, token: &str, limit: i64) -> Result<Vec<ClaimedRow>, StoreError> {
            let sql = format!(
                "UPDATE notifications SET status = 'delivering', claim_token = $1, lease_until = $2 \
                 WHERE id IN (SELECT id FROM notifications \
                              WHERE (status = 'pending' AND next_attempt_at <= $3) \
                                 OR (status = 'delivering' AND lease_until <= $3) \
                              ORDER BY next_attempt_at LIMIT $4 {}) \
                 RETURNING {CLAIMED_COLUMNS}",
                <DB as ClaimLock>::SKIP_LOCKED
            );
            Ok(sqlx::query_as::<_, ClaimedRow>(&sql)
                .bind(token)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(self)
                .await?)
        }

        async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt_at ELSE lease_until END) \
                 FROM notifications WHERE status IN ('pending', 'delivering')",
            )
            .fetch_one(self)
            .await?)
        }

        async fn alert_state(&self, device_id: &str, alert_key: &str) -> Result<Option<AlertState>, StoreError> {
            let row: Option<Json<AlertState>> = sqlx::query_scalar(
                "SELECT fold_state FROM alert_state WHERE device_id = $1 AND alert_key = $2",
            )
            .bind(device_id)
            .bind(alert_key)
            .fetch_optional(self)
            .await?;
            Ok(row.map(|Json(state)| state))
        }

        async fn firing_announcements(&self, device_id: &str, alert_key: &str, episode: i64) -> Result<Vec<FiringAnnouncement>, StoreError> {
            // One row per attempt (or one without, for a message never attempted).
            type Row = (String, String, Option<DateTime<Utc>>, Option<String>, Option<i64>, Option<String>);
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT n.id, n.status, n.episode_opened_at, a.outcome, a.status_code, a.error \
                 FROM notifications n \
                 LEFT JOIN notification_attempts a ON a.notification_id = n.id \
                 WHERE n.device_id = $1 AND n.alert_key = $2 AND n.episode_number = $3 \
                   AND n.message = 'firing' \
                 ORDER BY n.id",
            )
            .bind(device_id)
            .bind(alert_key)
            .bind(episode)
            .fetch_all(self)
            .await?;
            let mut announcements: Vec<(String, FiringAnnouncement)> = Vec::new();
            for (id, status, episode_opened_at, outcome, code, error) in rows {
                let Some(status) = DeliveryStatus::parse(&status) else {
                    continue;
                };
                let reached = outcome
                    .as_deref()
                    .is_some_and(|outcome| attempt_may_have_reached(outcome, code, error.as_deref()));
                match announcements.last_mut() {
                    Some((last, announcement)) if *last == id => announcement.maybe_seen |= reached,
                    _ => announcements.push((id, FiringAnnouncement { status, episode_opened_at, maybe_seen: reached })),
                }
            }
            Ok(announcements.into_iter().map(|(_, announcement)| announcement).collect())
        }

        async fn episode_spans(&self, device_id: &str, alert_key: &str) -> Result<Vec<EpisodeSpan>, StoreError> {
            let rows: Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT episode_number, opened_at, closed_at FROM alert_episodes \
                 WHERE device_id = $1 AND alert_key = $2 ORDER BY episode_number",
            )
            .bind(device_id)
            .bind(alert_key)
            .fetch_all(self)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(number, opened_at, closed_at)| EpisodeSpan { number, opened_at, closed_at })
                .collect())
        }

        async fn episode_facts(&self, device_id: &str, alert_key: &str, episode: i64) -> Result<Option<EpisodeFacts>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT opened_at, closed_at, severity, summary FROM alert_episodes \
                 WHERE device_id = $1 AND alert_key = $2 AND episode_number = $3",
            )
            .bind(device_id)
            .bind(alert_key)
            .bind(episode)
            .fetch_optional(self)
            .await?)
        }

        async fn start_attempt(&self, id: &str, token: &str, attempt: i64, started_at: DateTime<Utc>) -> Result<bool, StoreError> {
            let mut tx = self.begin().await?;
            let claimed = sqlx::query(
                "UPDATE notifications SET attempts = $3 \
                 WHERE id = $1 AND claim_token = $2 AND status = 'delivering'",
            )
            .bind(id)
            .bind(token)
            .bind(attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                return Ok(false);
            }
            // An attempt still in flight belongs to a server that died mid-delivery.
            sqlx::query(ABANDON_IN_FLIGHT)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO notification_attempts (notification_id, attempt, started_at, outcome) \
                 VALUES ($1, $2, $3, 'in_flight')",
            )
            .bind(id)
            .bind(attempt)
            .bind(started_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn finish(&self, id: &str, token: &str, finish: Finish) -> Result<(), StoreError> {
            let mut tx = self.begin().await?;
            let (code, error) = match &finish.attempt {
                Some(attempt) => (attempt.status_code, attempt.error.clone()),
                None => (None, None),
            };
            let updated = sqlx::query(
                "UPDATE notifications SET status = $3, reason = $4, \
                   next_attempt_at = COALESCE($5, next_attempt_at), \
                   last_status_code = COALESCE($6, last_status_code), \
                   last_error = COALESCE($7, last_error), finished_at = $8, \
                   claim_token = NULL, lease_until = NULL \
                 WHERE id = $1 AND claim_token = $2",
            )
            .bind(id)
            .bind(token)
            .bind(finish.status.as_str())
            .bind(finish.reason.as_deref())
            .bind(finish.next_attempt_at)
            .bind(code)
            .bind(error.as_deref())
            .bind(finish.finished_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                // The lease ran out and another server owns the message now.
                return Ok(());
            }
            if finish.attempt.is_none() {
                // Finished without an attempt of its own (suppressed, deferred): an attempt
                // still in flight is one whose server died mid-delivery.
                sqlx::query(ABANDON_IN_FLIGHT)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(attempt) = &finish.attempt {
                sqlx::query(
                    "UPDATE notification_attempts SET outcome = $3, status_code = $4, \
                       error = $5, duration_ms = $6 \
                     WHERE notification_id = $1 AND attempt = $2",
                )
                .bind(id)
                .bind(attempt.number)
                .bind(attempt.outcome)
                .bind(attempt.status_code)
                .bind(attempt.error.as_deref())
                .bind(attempt.duration_ms)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(next) = &finish.then_schedule {
                tx.schedule(next).await?;
            }
            tx.commit().await?;
            Ok(())
        }

        async fn delivery_log(&self, filter: &LogFilter) -> Result<Vec<MessageRow>, StoreError> {
            let (after_at, after_id) = match &filter.after {
                Some((at, id)) => (Some(*at), Some(id.as_str())),
                None => (None, None),
            };
            let status = filter.status.map(|s| s.as_str());
            let mut rows = sqlx::query_as::<_, MessageRow>(&format!(
                "SELECT {LOG_COLUMNS} FROM notifications WHERE {LOG_FILTER} \
                 ORDER BY created_at, id LIMIT $6"
            ))
            .bind(filter.device_id.as_deref())
            .bind(filter.alert_key.as_deref())
            .bind(status)
            .bind(after_at)
            .bind(after_id)
            .bind(filter.limit)
            .fetch_all(self)
            .await?;
            let attempts = sqlx::query_as::<_, AttemptRow>(&format!(
                "SELECT notification_id, attempt, started_at, duration_ms, status_code, error, outcome \
                 FROM notification_attempts WHERE notification_id IN \
                   (SELECT id FROM notifications WHERE {LOG_FILTER} ORDER BY created_at, id LIMIT $6) \
                 ORDER BY notification_id, attempt"
            ))
            .bind(filter.device_id.as_deref())
            .bind(filter.alert_key.as_deref())
            .bind(status)
            .bind(after_at)
            .bind(after_id)
            .bind(filter.limit)
            .fetch_all(self)
            .await?;
            for attempt in attempts {
                if let Some(row) = rows.iter_mut().find(|r| r.id == attempt.notification_id) {
                    row.attempt_log.push(attempt);
                }
            }
            Ok(rows)
        }
    }
}
