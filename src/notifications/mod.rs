//! Notifications: the messages people see — first alert, reminders, resolved — kept in
//! step with the ledger's state rather than with the order requests arrived in.
//!
//! # Layout
//!
//! - [`config`]: the `--notify-config` TOML file: receivers, routes, delivery settings.
//! - [`plan`]: the rules as pure functions — which messages a projection change
//!   schedules, and whether a due message is still sent, decided from the alert's state
//!   at send time.
//! - [`outbox`]: the outbox tables; messages are scheduled in the same transaction as
//!   the projection change that causes them.
//! - [`render`]: the webhook, Slack and Feishu bodies.
//! - [`dispatcher`]: claims due messages, delivers them with backoff, dead-letters.
//!
//! The projector calls [`Notifier::plan`] for every alert it changes; rebuilds do not go
//! through the projector, so a rebuild schedules nothing.

pub mod config;
pub mod dispatcher;
pub mod outbox;
pub mod plan;
pub mod render;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::domain::fold::{AlertState, Episode};
use crate::domain::RecordedEvent;
pub use config::NotifyConfig;
use outbox::NewMessage;
use plan::{idempotency_key, MessageKind, Transition};

/// The configuration plus a bell the projector rings after scheduling, so a message
/// with no `group_wait` goes out without waiting for the next poll.
#[derive(Debug)]
pub struct Notifier {
    pub config: Arc<NotifyConfig>,
    pub wake: Arc<Notify>,
}

/// What the projector must look up for a transition before [`Notifier::plan`] can
/// turn it into a message.
pub enum Lookup {
    /// Opened: the episode's opening alarm (by event id), for routing.
    OpeningAlarm(String),
    /// Closed: where the episode's firing message went.
    FiringRoute(i64),
}

/// What the projector found.
pub enum Found<'a> {
    Opening {
        episode: &'a Episode,
        alarm: Option<&'a RecordedEvent>,
    },
    /// The (route, receiver) of the episode's firing message, if one was scheduled.
    FiringRoute(Option<(String, String)>),
}

impl Notifier {
    pub fn new(config: NotifyConfig) -> Self {
        Self {
            config: Arc::new(config),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The message for one transition, given what the projector looked up.
    pub fn plan(
        &self,
        device_id: &str,
        alert_key: &str,
        transition: &Transition,
        found: Found<'_>,
        now: DateTime<Utc>,
    ) -> Option<NewMessage> {
        match (*transition, found) {
            (
                Transition::Opened { episode, .. },
                Found::Opening {
                    episode: current,
                    alarm,
                },
            ) => {
                // History: an episode that opened long ago pages nobody now.
                if current.opened_at < earlier(now, self.config.history_cutoff) {
                    return None;
                }
                let route = self.config.route_for(device_id, alarm?);
                let due_at = later(current.opening_recorded_at, route.group_wait);
                Some(NewMessage {
                    id: idempotency_key(
                        device_id,
                        alert_key,
                        episode,
                        Some(current.opened_at),
                        MessageKind::Firing,
                        0,
                        &route.receiver,
                    ),
                    device_id: device_id.to_string(),
                    alert_key: alert_key.to_string(),
                    episode,
                    kind: MessageKind::Firing,
                    reminder: 0,
                    route: route.name.clone(),
                    receiver: route.receiver.clone(),
                    due_at,
                    created_at: now,
                    episode_opened_at: Some(current.opened_at),
                })
            }
            (
                Transition::Closed { episode, opened_at },
                Found::FiringRoute(Some((route, receiver))),
            ) => {
                let send_resolved = self
                    .config
                    .route(&route)
                    .map(|r| r.send_resolved)
                    .unwrap_or(true);
                send_resolved.then(|| NewMessage {
                    id: idempotency_key(
                        device_id,
                        alert_key,
                        episode,
                        Some(opened_at),
                        MessageKind::Resolved,
                        0,
                        &receiver,
                    ),
                    device_id: device_id.to_string(),
                    alert_key: alert_key.to_string(),
                    episode,
                    kind: MessageKind::Resolved,
                    reminder: 0,
                    route,
                    receiver,
                    due_at: now,
                    created_at: now,
                    episode_opened_at: Some(opened_at),
                })
            }
            _ => None,
        }
    }

    /// What to look up for a transition.
    pub fn lookup(transition: &Transition, after: &AlertState) -> Option<Lookup> {
        match *transition {
            Transition::Opened { .. } => after
                .current_episode
                .as_ref()
                .map(|e| Lookup::OpeningAlarm(e.opened_by.clone())),
            Transition::Closed { episode, .. } => Some(Lookup::FiringRoute(episode)),
        }
    }
}

/// The latest time a message is scheduled for: four-digit years, which both engines
/// store and `stored_time` formats.
fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at + wait`, saturating at [`latest`]. The configuration bounds every duration, but
/// this runs inside the projection transaction and the dispatcher, where chrono's `+`
/// would panic on overflow and `from_std(..).unwrap_or_default()` would turn a huge
/// wait into none at all.
pub fn later(at: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| at.checked_add_signed(wait))
        .map_or_else(latest, |due| due.min(latest()))
}

/// `at - wait`, saturating at the earliest representable time (before which nothing
/// happened, so "older than the cutoff" is then false for everything).
pub fn earlier(at: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| at.checked_sub_signed(wait))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn clock_arithmetic_saturates_instead_of_panicking_or_wrapping() {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 21, 5, 0).unwrap();
        assert_eq!(
            later(at, Duration::from_secs(90)),
            Utc.with_ymd_and_hms(2026, 12, 3, 21, 6, 30).unwrap()
        );
        let end = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        // 1000000y and 300000000y from the breaker's files; u64::MAX seconds too.
        for huge in [1_000_000u64, 300_000_000].map(|years| years * 31_557_600) {
            assert_eq!(later(at, Duration::from_secs(huge)), end);
        }
        assert_eq!(later(at, Duration::MAX), end);
        assert_eq!(
            earlier(at, Duration::from_secs(3600)),
            Utc.with_ymd_and_hms(2026, 12, 3, 20, 5, 0).unwrap()
        );
        assert_eq!(
            earlier(at, Duration::from_secs(1_000_000 * 31_557_600)),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(earlier(at, Duration::MAX), DateTime::<Utc>::MIN_UTC);
    }
}
