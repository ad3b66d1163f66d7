//! The notification rules as pure functions: which messages a projection change asks
//! for, and whether a due message is sent, given the alert's state at send time.
//!
//! Nothing here trusts the order requests arrived in. A message is only *scheduled* when
//! the projection changes; whether it goes out is decided again when it is due, from the
//! state the ledger holds then. That is what keeps a late recovery from being followed
//! by a reminder, and a 242 ms flap inside `group_wait` from paging anyone.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
/// `firing_message` is the status of the episode's firing message (for `Resolved`).
pub fn decide(
    kind: MessageKind,
    episode: i64,
    state: Option<&AlertState>,
    firing_message: Option<DeliveryStatus>,
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
            match firing_message {
                Some(DeliveryStatus::Delivered) => Decision::Send,
                Some(DeliveryStatus::Pending | DeliveryStatus::Delivering) => Decision::Defer,
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
        assert_eq!(decide(m, 1, Some(&firing), None), Decision::Send);
        assert_eq!(
            decide(m, 1, Some(&resolved), None),
            Decision::Suppress("resolved before it was sent")
        );
        assert_eq!(
            decide(m, 1, Some(&later), None),
            Decision::Suppress("a later episode replaced this one")
        );
        assert_eq!(
            decide(m, 1, None, None),
            Decision::Suppress("resolved before it was sent")
        );
    }

    #[test]
    fn an_acknowledgement_stops_reminders_but_not_the_first_message() {
        let acknowledged = state(Status::Firing, Some(1), true);
        assert_eq!(
            decide(MessageKind::Reminder, 1, Some(&acknowledged), None),
            Decision::Suppress("acknowledged")
        );
        assert_eq!(
            decide(MessageKind::Firing, 1, Some(&acknowledged), None),
            Decision::Send
        );
    }

    #[test]
    fn a_resolved_message_follows_only_a_delivered_firing_message() {
        let resolved = state(Status::Resolved, Some(1), false);
        let r = MessageKind::Resolved;
        assert_eq!(
            decide(r, 1, Some(&resolved), Some(DeliveryStatus::Delivered)),
            Decision::Send
        );
        assert_eq!(
            decide(r, 1, Some(&resolved), Some(DeliveryStatus::Pending)),
            Decision::Defer
        );
        assert_eq!(
            decide(r, 1, Some(&resolved), Some(DeliveryStatus::Delivering)),
            Decision::Defer
        );
        for told_nobody in [
            None,
            Some(DeliveryStatus::Suppressed),
            Some(DeliveryStatus::Dead),
        ] {
            assert_eq!(
                decide(r, 1, Some(&resolved), told_nobody),
                Decision::Suppress("nobody was told this episode fired")
            );
        }
        let refired = state(Status::Firing, Some(2), false);
        assert_eq!(
            decide(r, 1, Some(&refired), Some(DeliveryStatus::Delivered)),
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
