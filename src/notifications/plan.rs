//! The notification rules as pure functions: which messages a projection change asks
//! for, and whether a due message is sent, given the alert's state at send time.
//!
//! Nothing here trusts the order requests arrived in. A message is only *scheduled* when
//! the projection changes; whether it goes out is decided again when it is due, from the
//! state the ledger holds then. That is what keeps a late recovery from being followed
//! by a reminder, and a 242 ms flap inside `group_wait` from paging anyone.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::outbox::FiringAnnouncement;

use crate::domain::fold::{AlertState, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// The first message of an episode, `group_wait` after its opening alarm.
    Firing,
    /// Sent every `repeat_interval` while the episode fires unacknowledged.
    Reminder,
    /// Exactly one, when an episode that was announced closes.
    Resolved,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Firing => "firing",
            MessageKind::Reminder => "reminder",
            MessageKind::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Firing, Self::Reminder, Self::Resolved]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message is in its life. `delivered`, `suppressed` and `dead` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Delivered,
    Suppressed,
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Delivered,
        DeliveryStatus::Suppressed,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Suppressed => "suppressed",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What one projection change means for an alert's episodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// This episode fires now and did not before: schedule its first message.
    Opened { episode: i64 },
    /// This episode fired before and does not now: announce its end (if it was announced).
    Closed { episode: i64 },
}

/// Compare an alert's state before and after a projection step.
pub fn transitions(before: &AlertState, after: &AlertState) -> Vec<Transition> {
    let firing = |state: &AlertState| match (&state.status, &state.current_episode) {
        (Status::Firing, Some(episode)) => Some(episode.number),
        _ => None,
    };
    let (was, is) = (firing(before), firing(after));
    let mut changes = Vec::new();
    if let Some(episode) = was {
        if is != Some(episode) {
            changes.push(Transition::Closed { episode });
        }
    }
    if let Some(episode) = is {
        if was != Some(episode) {
            changes.push(Transition::Opened { episode });
        }
    }
    changes
}

/// What the dispatcher does with a due message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Final: the message no longer applies; the reason goes into the delivery log.
    Suppress(&'static str),
    /// Not yet: the episode's firing message is still on its way.
    Defer,
}

/// Decide from the alert's state *now* whether a due message goes out.
///
/// For `Resolved`: `firing` is what became of the episode's firing message, and
/// `closed_episode` the span (opened, closed) of the episode carrying that number now.
/// A resolved message goes out when the receiver was, or may have been, told about the
/// stretch of firing that closed: the firing message was delivered, or some attempt of
/// it may have reached the receiver unconfirmed (a chat showing an alert must also
/// show its end); and the announced stretch lies inside the closed episode (late history
/// can renumber episodes, and then "episode 1" may name a different stretch than the
/// one announced).
pub fn decide(
    kind: MessageKind,
    episode: i64,
    state: Option<&AlertState>,
    firing: Option<&FiringAnnouncement>,
    closed_episode: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
) -> Decision {
    let current = state.and_then(|s| s.current_episode.as_ref().map(|e| (s.status, e)));
    match kind {
        MessageKind::Firing | MessageKind::Reminder => match current {
            Some((Status::Firing, current)) if current.number == episode => {
                if kind == MessageKind::Reminder && current.acknowledged.is_some() {
                    Decision::Suppress("acknowledged")
                } else {
                    Decision::Send
                }
            }
            Some((_, current)) if current.number > episode => {
                Decision::Suppress("a later episode replaced this one")
            }
            _ => Decision::Suppress("resolved before it was sent"),
        },
        MessageKind::Resolved => {
            if let Some((Status::Firing, current)) = current {
                if current.number == episode {
                    return Decision::Suppress("the episode is firing again");
                }
            }
            let Some(firing) = firing else {
                return Decision::Suppress("nobody was told this episode fired");
            };
            if let (Some(announced), Some((opened_at, closed_at))) =
                (firing.episode_opened_at, closed_episode)
            {
                let inside = opened_at <= announced && closed_at.is_none_or(|c| announced <= c);
                if !inside {
                    return Decision::Suppress(
                        "late history renumbered the episodes: the stretch announced under this number did not close",
                    );
                }
            }
            match firing.status {
                DeliveryStatus::Delivered => Decision::Send,
                DeliveryStatus::Pending | DeliveryStatus::Delivering => Decision::Defer,
                _ if firing.maybe_seen => Decision::Send,
                _ => Decision::Suppress("nobody was told this episode fired"),
            }
        }
    }
}

/// The stable idempotency key of one message to one receiver: the same message always
/// gets the same key, on every attempt and on every server.
pub fn idempotency_key(
    device_id: &str,
    alert_key: &str,
    episode: i64,
    kind: MessageKind,
    reminder: i64,
    receiver: &str,
) -> String {
    // Fields are NUL-separated: submissions never contain NUL, so no two messages share
    // the name.
    let name = format!("{device_id}\0{alert_key}\0{episode}\0{kind}\0{reminder}\0{receiver}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

const NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_27b0_4c8d_4f1a_9f53_2d1c_0b7e_a242);

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::fold::{Acknowledged, Episode};

    fn state(status: Status, episode: Option<i64>, acknowledged: bool) -> AlertState {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 21, 0, 0).unwrap();
        AlertState {
            status,
            current_episode: episode.map(|number| Episode {
                number,
                opened_at: at,
                closed_at: None,
                alarm_count: 1,
                severity: None,
                summary: None,
                opened_by: "a".into(),
                closed_by: None,
                reconciled: false,
                opening_recorded_at: at,
                acknowledged: acknowledged.then(|| Acknowledged {
                    at,
                    by: Some("ana".into()),
                    reason: None,
                    event_id: "k".into(),
                }),
            }),
            ..AlertState::default()
        }
    }

    #[test]
    fn an_alarm_opens_and_a_recovery_closes() {
        let quiet = AlertState::default();
        let firing = state(Status::Firing, Some(1), false);
        let resolved = state(Status::Resolved, Some(1), false);
        assert_eq!(
            transitions(&quiet, &firing),
            vec![Transition::Opened { episode: 1 }]
        );
        assert_eq!(
            transitions(&firing, &resolved),
            vec![Transition::Closed { episode: 1 }]
        );
        assert_eq!(transitions(&firing, &firing), vec![]);
        assert_eq!(transitions(&resolved, &resolved), vec![]);
        // A recovery that arrived first, then its alarm: the episode never fired.
        assert_eq!(transitions(&quiet, &resolved), vec![]);
        let refired = state(Status::Firing, Some(2), false);
        assert_eq!(
            transitions(&firing, &refired),
            vec![
                Transition::Closed { episode: 1 },
                Transition::Opened { episode: 2 }
            ]
        );
    }

    #[test]
    fn a_due_firing_message_is_sent_only_while_its_episode_fires() {
        let firing = state(Status::Firing, Some(1), false);
        let resolved = state(Status::Resolved, Some(1), false);
        let later = state(Status::Firing, Some(2), false);
        let m = MessageKind::Firing;
        assert_eq!(decide(m, 1, Some(&firing), None, None), Decision::Send);
        assert_eq!(
            decide(m, 1, Some(&resolved), None, None),
            Decision::Suppress("resolved before it was sent")
        );
        assert_eq!(
            decide(m, 1, Some(&later), None, None),
            Decision::Suppress("a later episode replaced this one")
        );
        assert_eq!(
            decide(m, 1, None, None, None),
            Decision::Suppress("resolved before it was sent")
        );
    }

    #[test]
    fn an_acknowledgement_stops_reminders_but_not_the_first_message() {
        let acknowledged = state(Status::Firing, Some(1), true);
        assert_eq!(
            decide(MessageKind::Reminder, 1, Some(&acknowledged), None, None),
            Decision::Suppress("acknowledged")
        );
        assert_eq!(
            decide(MessageKind::Firing, 1, Some(&acknowledged), None, None),
            Decision::Send
        );
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 21, minute, 0).unwrap()
    }

    fn announced(
        status: DeliveryStatus,
        opened_minute: Option<u32>,
        maybe_seen: bool,
    ) -> FiringAnnouncement {
        FiringAnnouncement {
            status,
            episode_opened_at: opened_minute.map(at),
            maybe_seen,
        }
    }

    #[test]
    fn a_resolved_message_follows_only_a_delivered_firing_message() {
        let resolved = state(Status::Resolved, Some(1), false);
        let r = MessageKind::Resolved;
        let span = Some((at(0), Some(at(10))));
        let decide_with = |state: &AlertState, firing: Option<FiringAnnouncement>| {
            decide(r, 1, Some(state), firing.as_ref(), span)
        };
        assert_eq!(
            decide_with(
                &resolved,
                Some(announced(DeliveryStatus::Delivered, Some(0), false))
            ),
            Decision::Send
        );
        assert_eq!(
            decide_with(
                &resolved,
                Some(announced(DeliveryStatus::Pending, Some(0), false))
            ),
            Decision::Defer
        );
        assert_eq!(
            decide_with(
                &resolved,
                Some(announced(DeliveryStatus::Delivering, Some(0), true))
            ),
            Decision::Defer
        );
        for told_nobody in [
            None,
            Some(announced(DeliveryStatus::Suppressed, Some(0), false)),
            Some(announced(DeliveryStatus::Dead, Some(0), false)),
        ] {
            assert_eq!(
                decide_with(&resolved, told_nobody),
                Decision::Suppress("nobody was told this episode fired")
            );
        }
        let refired = state(Status::Firing, Some(2), false);
        assert_eq!(
            decide_with(
                &refired,
                Some(announced(DeliveryStatus::Delivered, Some(0), false))
            ),
            Decision::Send
        );
        // Rows from before the announced stretch was stored: the number alone decides.
        assert_eq!(
            decide_with(
                &resolved,
                Some(announced(DeliveryStatus::Delivered, None, false))
            ),
            Decision::Send
        );
    }

    /// The breaker's case: the firing attempt timed out (the receiver showed it anyway),
    /// then the episode closed and the retry was suppressed. The chat shows an alert:
    /// it must also get its end.
    #[test]
    fn a_firing_message_that_may_have_been_seen_gets_its_resolved_message() {
        let resolved = state(Status::Resolved, Some(1), false);
        for status in [DeliveryStatus::Suppressed, DeliveryStatus::Dead] {
            assert_eq!(
                decide(
                    MessageKind::Resolved,
                    1,
                    Some(&resolved),
                    Some(&announced(status, Some(0), true)),
                    Some((at(0), Some(at(1)))),
                ),
                Decision::Send
            );
        }
    }

    #[test]
    fn attempts_that_got_an_answer_or_never_connected_reached_nobody_unseen() {
        use super::super::dispatcher::NOT_CONNECTED;
        use super::super::outbox::attempt_may_have_reached;
        assert!(attempt_may_have_reached(
            "retry",
            None,
            Some("operation timed out")
        ));
        assert!(attempt_may_have_reached("abandoned", None, None));
        assert!(attempt_may_have_reached("in_flight", None, None));
        assert!(!attempt_may_have_reached(
            "retry",
            Some(503),
            Some("503: busy")
        ));
        assert!(!attempt_may_have_reached(
            "failed",
            Some(400),
            Some("400: bad")
        ));
        let refused = format!("{NOT_CONNECTED}connection refused");
        assert!(!attempt_may_have_reached("retry", None, Some(&refused)));
    }

    /// The breaker's case: episode 1 (alarm at :05) was announced; then a late alarm at
    /// :01 and recovery at :02 arrived. Episode 1 is now [:01, :02], closed; the
    /// announced alarm is episode 2 and still fires. No "resolved" for episode 1.
    #[test]
    fn a_renumbered_episode_does_not_resolve_the_stretch_that_still_fires() {
        let now_firing = state(Status::Firing, Some(2), false);
        assert_eq!(
            decide(
                MessageKind::Resolved,
                1,
                Some(&now_firing),
                Some(&announced(DeliveryStatus::Delivered, Some(5), false)),
                Some((at(1), Some(at(2)))),
            ),
            Decision::Suppress(
                "late history renumbered the episodes: the stretch announced under this number did not close"
            )
        );
        // An episode extended backwards by a late alarm still contains the announced one.
        let resolved = state(Status::Resolved, Some(1), false);
        assert_eq!(
            decide(
                MessageKind::Resolved,
                1,
                Some(&resolved),
                Some(&announced(DeliveryStatus::Delivered, Some(5), false)),
                Some((at(1), Some(at(9)))),
            ),
            Decision::Send
        );
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let key = |episode, kind, reminder| {
            idempotency_key("room-3f", "offline", episode, kind, reminder, "ops")
        };
        assert_eq!(
            key(1, MessageKind::Firing, 0),
            key(1, MessageKind::Firing, 0)
        );
        let parsed = Uuid::parse_str(&key(1, MessageKind::Firing, 0)).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 5);
        assert_ne!(
            key(1, MessageKind::Firing, 0),
            idempotency_key("room-3f", "offline", 1, MessageKind::Firing, 0, "chat")
        );
        assert_ne!(
            key(1, MessageKind::Firing, 0),
            key(2, MessageKind::Firing, 0)
        );
        assert_ne!(
            key(1, MessageKind::Reminder, 1),
            key(1, MessageKind::Reminder, 2)
        );
        assert_ne!(
            key(1, MessageKind::Firing, 0),
            key(1, MessageKind::Resolved, 0)
        );
    }
}
