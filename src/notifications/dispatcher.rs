//! The dispatcher: claims due messages, decides from the alert's state at that moment
//! whether each still applies, delivers it, and records the attempt.
//!
//! Delivery is at least once. A claim is a lease: a server that dies mid-delivery leaves
//! its messages `delivering`, and when the lease runs out any server (this one after a
//! restart, or another on the same PostgreSQL database) claims them again. A receiver
//! may therefore see a message twice, always with the same idempotency key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::config::{NotifyConfig, ReceiverKind};
use super::later;
use super::outbox::{Attempt, ClaimedRow, Finish, NewMessage, Outbox};
use super::plan::{
    decide, decide_resolved, idempotency_key, Decision, DeliveryStatus, MessageKind,
};
use super::render::{body, MessageView};
use crate::store::{Db, StoreError};
use crate::with_pool;

/// The clock at the microsecond precision both engines store.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Messages claimed per round; they are delivered concurrently.
const CLAIM_BATCH: i64 = 32;
/// A `Retry-After` longer than this is not believed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Dispatcher {
    db: Db,
    config: Arc<NotifyConfig>,
    client: reqwest::Client,
    wake: Arc<Notify>,
    pub counters: Arc<DeliveryCounters>,
}

/// What this process's dispatcher did since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    pub suppressed: AtomicU64,
}

/// What one HTTP attempt came to.
#[derive(Debug)]
enum Delivery {
    Delivered(u16),
    /// Worth retrying: 408, 429, 5xx, or no answer. Carries any `Retry-After`.
    Retry(Option<u16>, String, Option<Duration>),
    /// The receiver refused the message for good (other 4xx, or 3xx).
    Refused(u16, String),
}

impl Dispatcher {
    pub fn new(
        db: Db,
        config: Arc<NotifyConfig>,
        wake: Arc<Notify>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.delivery.timeout)
            // A webhook that redirects is misconfigured; following it could carry the
            // message (and its headers) somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("alert-ledger/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            db,
            config,
            client,
            wake,
            counters: Arc::default(),
        })
    }

    /// Deliver until `stop` turns true; a round in progress finishes first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            receivers = self.config.receivers.len(),
            routes = self.config.routes.len(),
            "notification dispatcher started"
        );
        loop {
            if *stop.borrow() {
                break;
            }
            // Each round runs as its own task: a panic in one (a bug) is logged and the
            // next poll tries again, instead of ending this loop, and with it every
            // delivery of this server, without a word.
            let this = self.clone();
            match tokio::spawn(async move { this.round().await }).await {
                Ok(Ok(claimed)) if claimed > 0 => continue,
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "notification round failed; retrying"),
                Err(error) => {
                    tracing::error!(%error, "notification round panicked; retrying at the next poll")
                }
            }
            let wait = self.idle_wait().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("notification dispatcher stopped");
    }

    /// Until the next message falls due, but at most the poll interval: other servers
    /// may schedule messages this one is not told about.
    async fn idle_wait(&self) -> Duration {
        let poll = self.config.delivery.poll_interval;
        match with_pool!(&self.db, pool => pool.next_due().await) {
            Ok(Some(due)) => (due - now()).to_std().unwrap_or(Duration::ZERO).min(poll),
            _ => poll,
        }
    }

    /// Claim what is due and deliver it; returns how many messages were claimed.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let now = now();
        let lease_until = later(now, self.config.delivery.lease);
        let token = Uuid::now_v7().to_string();
        let claimed = with_pool!(&self.db, pool => pool.claim_due(now, lease_until, &token, CLAIM_BATCH).await)?;
        let count = claimed.len();
        let mut deliveries = JoinSet::new();
        for row in claimed {
            let this = self.clone();
            let token = token.clone();
            deliveries.spawn(async move {
                let id = row.id.clone();
                if let Err(error) = this.process(row, &token).await {
                    // The lease runs out and the message is claimed again.
                    tracing::warn!(%error, notification = %id, "could not finish a notification");
                }
            });
        }
        while let Some(joined) = deliveries.join_next().await {
            if let Err(error) = joined {
                // Its claim stays until the lease runs out; then it is delivered again.
                tracing::error!(%error, "a notification delivery panicked");
            }
        }
        Ok(count)
    }

    async fn process(&self, row: ClaimedRow, token: &str) -> Result<(), StoreError> {
        let Some(kind) = MessageKind::parse(&row.message) else {
            return self
                .finish_final(&row, token, DeliveryStatus::Dead, "unknown message kind")
                .await;
        };
        // The episode whose facts the message shows: for a resolved message, the one
        // that now contains the announced stretch (late history can renumber it).
        let (decision, facts_episode) = match kind {
            MessageKind::Resolved => {
                let firings = with_pool!(&self.db, pool => pool.firing_announcements(&row.device_id, &row.alert_key, row.episode_number).await)?;
                let episodes = with_pool!(&self.db, pool => pool.episode_spans(&row.device_id, &row.alert_key).await)?;
                let (decision, reported) = decide_resolved(row.episode_number, &firings, &episodes);
                (decision, reported.map_or(row.episode_number, |e| e.number))
            }
            _ => {
                let state = with_pool!(&self.db, pool => pool.alert_state(&row.device_id, &row.alert_key).await)?;
                (
                    decide(kind, row.episode_number, state.as_ref()),
                    row.episode_number,
                )
            }
        };
        match decision {
            Decision::Suppress(reason) => {
                tracing::info!(notification = %row.id, device_id = %row.device_id, alert_key = %row.alert_key,
                    episode = row.episode_number, message = %kind, reason, "notification suppressed");
                self.finish_final(&row, token, DeliveryStatus::Suppressed, reason)
                    .await
            }
            Decision::Defer => {
                let next = later(now(), self.config.delivery.initial_backoff);
                let finish = Finish {
                    status: DeliveryStatus::Pending,
                    reason: Some("waiting for the episode's firing message".into()),
                    next_attempt_at: Some(next),
                    attempt: None,
                    finished_at: None,
                    then_schedule: None,
                };
                with_pool!(&self.db, pool => pool.finish(&row.id, token, finish).await)
            }
            Decision::Send => self.send(row, kind, facts_episode, token).await,
        }
    }

    async fn finish_final(
        &self,
        row: &ClaimedRow,
        token: &str,
        status: DeliveryStatus,
        reason: &str,
    ) -> Result<(), StoreError> {
        let counter = match status {
            DeliveryStatus::Suppressed => &self.counters.suppressed,
            _ => &self.counters.dead,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let finish = Finish {
            status,
            reason: Some(reason.to_string()),
            next_attempt_at: None,
            attempt: None,
            finished_at: Some(now()),
            then_schedule: None,
        };
        with_pool!(&self.db, pool => pool.finish(&row.id, token, finish).await)
    }

    async fn send(
        &self,
        row: ClaimedRow,
        kind: MessageKind,
        facts_episode: i64,
        token: &str,
    ) -> Result<(), StoreError> {
        let Some(receiver) = self.config.receiver(&row.receiver) else {
            // Another server on this database may have the receiver (a rolling change of
            // the configuration): leave the message to it rather than dead-letter it.
            tracing::warn!(notification = %row.id, receiver = %row.receiver,
                "receiver not in this server's configuration; leaving the message to a server that has it");
            let finish = Finish {
                status: DeliveryStatus::Pending,
                reason: Some(format!(
                    "receiver {} is not in the configuration of a server that claimed it",
                    row.receiver
                )),
                next_attempt_at: Some(later(now(), self.config.delivery.lease)),
                attempt: None,
                finished_at: None,
                then_schedule: None,
            };
            return with_pool!(&self.db, pool => pool.finish(&row.id, token, finish).await);
        };
        let Some(facts) = with_pool!(&self.db, pool => pool.episode_facts(&row.device_id, &row.alert_key, facts_episode).await)?
        else {
            return self
                .finish_final(
                    &row,
                    token,
                    DeliveryStatus::Suppressed,
                    "the episode no longer exists",
                )
                .await;
        };
        let attempt = row.attempts + 1;
        let started_at = now();
        if !with_pool!(&self.db, pool => pool.start_attempt(&row.id, token, attempt, started_at).await)?
        {
            return Ok(());
        }
        let view = MessageView {
            idempotency_key: row.id.clone(),
            kind,
            reminder: row.reminder_number,
            device_id: row.device_id.clone(),
            alert_key: row.alert_key.clone(),
            episode: row.episode_number,
            severity: facts.severity,
            summary: facts.summary,
            opened_at: facts.opened_at,
            closed_at: if kind == MessageKind::Resolved {
                facts.closed_at
            } else {
                None
            },
            sent_at: started_at,
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(key) = HeaderValue::from_str(&row.id) {
            headers.insert(HeaderName::from_static("idempotency-key"), key);
        }
        for (name, value) in &receiver.headers {
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value.expose()),
            ) {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        let clock = Instant::now();
        let outcome = deliver(
            &self.client,
            receiver.kind,
            receiver.url.expose(),
            headers,
            &body(receiver.kind, &view),
        )
        .await;
        let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = now();
        let max_attempts = i64::from(self.config.delivery.max_attempts);
        let finish = match outcome {
            Delivery::Delivered(code) => {
                tracing::info!(notification = %row.id, receiver = %row.receiver, device_id = %row.device_id,
                    alert_key = %row.alert_key, episode = row.episode_number, message = %kind, attempt, status = code, "notification delivered");
                Finish {
                    status: DeliveryStatus::Delivered,
                    reason: None,
                    next_attempt_at: None,
                    attempt: Some(Attempt {
                        number: attempt,
                        outcome: "delivered",
                        status_code: Some(i64::from(code)),
                        error: None,
                        duration_ms,
                    }),
                    finished_at: Some(now),
                    then_schedule: self.next_reminder(&row, kind, now),
                }
            }
            Delivery::Refused(code, error) => {
                tracing::warn!(notification = %row.id, receiver = %row.receiver, attempt, status = code, "receiver refused a notification; dead-lettered");
                Finish {
                    status: DeliveryStatus::Dead,
                    reason: Some(format!(
                        "the receiver refused it with {code}, which is not retried"
                    )),
                    next_attempt_at: None,
                    attempt: Some(Attempt {
                        number: attempt,
                        outcome: "failed",
                        status_code: Some(i64::from(code)),
                        error: Some(error),
                        duration_ms,
                    }),
                    finished_at: Some(now),
                    then_schedule: None,
                }
            }
            Delivery::Retry(code, error, _) if attempt >= max_attempts => {
                tracing::warn!(notification = %row.id, receiver = %row.receiver, attempt, "notification dead-lettered after its last attempt");
                Finish {
                    status: DeliveryStatus::Dead,
                    reason: Some(format!("gave up after {attempt} attempts")),
                    next_attempt_at: None,
                    attempt: Some(Attempt {
                        number: attempt,
                        outcome: "failed",
                        status_code: code.map(i64::from),
                        error: Some(error),
                        duration_ms,
                    }),
                    finished_at: Some(now),
                    then_schedule: None,
                }
            }
            Delivery::Retry(code, error, retry_after) => {
                let wait = self
                    .backoff(attempt)
                    .max(retry_after.unwrap_or(Duration::ZERO));
                tracing::info!(notification = %row.id, receiver = %row.receiver, attempt, status = ?code,
                    retry_in_ms = wait.as_millis() as u64, "notification not delivered; will retry");
                Finish {
                    status: DeliveryStatus::Pending,
                    reason: None,
                    next_attempt_at: Some(later(now, wait)),
                    attempt: Some(Attempt {
                        number: attempt,
                        outcome: "retry",
                        status_code: code.map(i64::from),
                        error: Some(error),
                        duration_ms,
                    }),
                    finished_at: None,
                    then_schedule: None,
                }
            }
        };
        let counter = match finish.status {
            DeliveryStatus::Delivered => &self.counters.delivered,
            DeliveryStatus::Dead => &self.counters.dead,
            _ => &self.counters.retried,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        with_pool!(&self.db, pool => pool.finish(&row.id, token, finish).await)
    }

    /// Exponential from `initial_backoff`, capped at `max_backoff`, with jitter over the
    /// upper half so that servers retrying one receiver spread out.
    fn backoff(&self, attempt: i64) -> Duration {
        let delivery = &self.config.delivery;
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(30);
        let full = delivery
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(delivery.max_backoff);
        let half = full / 2;
        half + full
            .saturating_sub(half)
            .mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    fn next_reminder(
        &self,
        row: &ClaimedRow,
        kind: MessageKind,
        now: DateTime<Utc>,
    ) -> Option<NewMessage> {
        if kind == MessageKind::Resolved {
            return None;
        }
        let interval = self.config.route(&row.route)?.repeat_interval?;
        let reminder = row.reminder_number + 1;
        Some(NewMessage {
            id: idempotency_key(
                &row.device_id,
                &row.alert_key,
                row.episode_number,
                row.episode_opened_at,
                MessageKind::Reminder,
                reminder,
                &row.receiver,
            ),
            device_id: row.device_id.clone(),
            alert_key: row.alert_key.clone(),
            episode: row.episode_number,
            kind: MessageKind::Reminder,
            reminder,
            route: row.route.clone(),
            receiver: row.receiver.clone(),
            due_at: later(now, interval),
            created_at: now,
            episode_opened_at: row.episode_opened_at,
        })
    }
}

/// How the error of an attempt that never connected begins (see
/// [`super::outbox::attempt_may_have_reached`]).
pub const NOT_CONNECTED: &str = "could not connect: ";

async fn deliver(
    client: &reqwest::Client,
    kind: ReceiverKind,
    url: &str,
    headers: HeaderMap,
    body: &serde_json::Value,
) -> Delivery {
    let response = match client.post(url).headers(headers).json(body).send().await {
        Ok(response) => response,
        // `without_url`: the URL of a chat webhook is its secret. A connection that was
        // never made is marked: that attempt certainly showed nobody anything.
        Err(error) if error.is_connect() => {
            return Delivery::Retry(
                None,
                format!("{NOT_CONNECTED}{}", error.without_url()),
                None,
            )
        }
        Err(error) => return Delivery::Retry(None, error.without_url().to_string(), None),
    };
    let status = response.status();
    let code = status.as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(200).collect();
    if status.is_success() {
        // Feishu answers 200 with a non-zero `code` when it refuses a card (bad signature,
        // bad format): that is a refusal, not a delivery.
        if kind == ReceiverKind::Feishu {
            if let Ok(answer) = serde_json::from_str::<serde_json::Value>(&text) {
                let app_code = answer.get("code").or_else(|| answer.get("StatusCode"));
                if let Some(app_code) = app_code.and_then(|c| c.as_i64()).filter(|c| *c != 0) {
                    return Delivery::Refused(code, format!("feishu code {app_code}: {excerpt}"));
                }
            }
        }
        return Delivery::Delivered(code);
    }
    if code == 408 || code == 429 || status.is_server_error() {
        Delivery::Retry(Some(code), format!("{code}: {excerpt}"), retry_after)
    } else {
        Delivery::Refused(code, format!("{code}: {excerpt}"))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value)
                .ok()?
                .with_timezone(&Utc);
            (at - now()).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date_and_capped() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = (now() + chrono::Duration::seconds(120)).to_rfc2822();
        let parsed = parse_retry_after(&later).expect("a date");
        assert!(
            parsed > Duration::from_secs(110) && parsed <= Duration::from_secs(120),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
