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

/// What one projection change means for an alert's episodes. `opened_at` is when the
/// episode opened in the ledger's order: with the number, it names the stretch of firing
/// a message is about, because late history can give a number to another stretch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// This episode fires now and did not before: schedule its first message.
    Opened {
        episode: i64,
        opened_at: DateTime<Utc>,
    },
    /// This episode fired before and does not now: announce its end (if it was announced).
    Closed {
        episode: i64,
        opened_at: DateTime<Utc>,
    },
}

/// Compare an alert's state before and after a projection step.
pub fn transitions(before: &AlertState, after: &AlertState) -> Vec<Transition> {
    let firing = |state: &AlertState| match (&state.status, &state.current_episode) {
        (Status::Firing, Some(episode)) => Some((episode.number, episode.opened_at)),
        _ => None,
    };
    let (was, is) = (firing(before), firing(after));
    // By number: a late alarm that moves the opening of the firing episode earlier
    // extends the stretch that was announced; it neither ends nor opens one.
    let number = |firing: Option<(i64, DateTime<Utc>)>| firing.map(|(n, _)| n);
    let mut changes = Vec::new();
    if let Some((episode, opened_at)) = was {
        if number(is) != Some(episode) {
            changes.push(Transition::Closed { episode, opened_at });
        }
    }
    if let Some((episode, opened_at)) = is {
        if number(was) != Some(episode) {
            changes.push(Transition::Opened { episode, opened_at });
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

/// Decide from the alert's state *now* whether a due firing message or reminder goes out.
pub fn decide(kind: MessageKind, episode: i64, state: Option<&AlertState>) -> Decision {
    let current = state.and_then(|s| s.current_episode.as_ref().map(|e| (s.status, e)));
    match current {
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
    }
}

/// One of the alert's episodes as the read model holds it now.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeSpan {
    pub number: i64,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl EpisodeSpan {
    fn contains(&self, at: DateTime<Utc>) -> bool {
        self.opened_at <= at && self.closed_at.is_none_or(|closed| at <= closed)
    }
}

/// Decide a due resolved message of episode `episode`, from the firing messages
/// scheduled under that number (`firings`) and the alert's episodes now. Returns the
/// decision and, when it is to send, the episode whose end it reports.
///
/// The message is about the stretch of firing that was announced, wherever late
/// history has put it since: it goes out when the receiver was, or may have been,
/// told about a stretch (its firing message was delivered, or an attempt may have
/// reached the receiver unconfirmed: a chat showing an alert must also show its end)
/// and the episode containing that stretch is closed now. If that episode fires (late
/// history renumbered the episodes and the stretch continues under another number), its
/// own cycle announces its end.
pub fn decide_resolved<'a>(
    episode: i64,
    firings: &[FiringAnnouncement],
    episodes: &'a [EpisodeSpan],
) -> (Decision, Option<&'a EpisodeSpan>) {
    let containing = |firing: &FiringAnnouncement| -> Option<&'a EpisodeSpan> {
        match firing.episode_opened_at {
            Some(at) => episodes.iter().find(|e| e.contains(at)),
            // Rows from before migration 0004: the number alone decides.
            None => episodes.iter().find(|e| e.number == episode),
        }
    };
    // A firing message still on its way goes first: resolved never overtakes it.
    let on_its_way = firings.iter().any(|f| {
        matches!(
            f.status,
            DeliveryStatus::Pending | DeliveryStatus::Delivering
        )
    });
    if on_its_way {
        return (Decision::Defer, None);
    }
    let told = |f: &&FiringAnnouncement| f.status == DeliveryStatus::Delivered || f.maybe_seen;
    let mut still_firing = false;
    for firing in firings.iter().filter(told) {
        match containing(firing) {
            Some(span) if span.closed_at.is_some() => return (Decision::Send, Some(span)),
            Some(_) => still_firing = true,
            None => {}
        }
    }
    if still_firing {
        (
            Decision::Suppress(
                "the announced stretch still fires (late history renumbered the episodes); its own cycle announces its end",
            ),
            None,
        )
    } else {
        (
            Decision::Suppress("nobody was told this episode fired"),
            None,
        )
    }
}

/// The stable idempotency key of one message to one receiver: the same message always
/// gets the same key, on every attempt and on every server.
///
/// `opened_at` (when the episode opened) is part of the name because an episode number
/// can come back for another stretch of firing after late history rewrote the episodes;
/// without it, a genuine new outage would share the key of an old message and never be
/// scheduled. `None` keeps the names of rows written before it was stored.
pub fn idempotency_key(
    device_id: &str,
    alert_key: &str,
    episode: i64,
    opened_at: Option<DateTime<Utc>>,
    kind: MessageKind,
    reminder: i64,
    receiver: &str,
) -> String {
    // Fields are NUL-separated: submissions never contain NUL, so no two messages share
    // the name.
    let mut name = format!("{device_id}\0{alert_key}\0{episode}\0{kind}\0{reminder}\0{receiver}");
    if let Some(opened_at) = opened_at {
        name.push('\0');
        name.push_str(&opened_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    }
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

const NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_27b0_4c8d_4f1a_9f53_2d1c_0b7e_a242);

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::fold::{Acknowledged, Episode};

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 21, minute, 0).unwrap()
    }

    fn state(status: Status, episode: Option<i64>, acknowledged: bool) -> AlertState {
        AlertState {
            status,
            current_episode: episode.map(|number| Episode {
                number,
                opened_at: at(number as u32),
                closed_at: None,
                alarm_count: 1,
                severity: None,
                summary: None,
                opened_by: "a".into(),
                closed_by: None,
                reconciled: false,
                opening_recorded_at: at(number as u32),
                acknowledged: acknowledged.then(|| Acknowledged {
                    at: at(0),
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
            vec![Transition::Opened {
                episode: 1,
                opened_at: at(1)
            }]
        );
        assert_eq!(
            transitions(&firing, &resolved),
            vec![Transition::Closed {
                episode: 1,
                opened_at: at(1)
            }]
        );
        assert_eq!(transitions(&firing, &firing), vec![]);
        assert_eq!(transitions(&resolved, &resolved), vec![]);
        // A recovery that arrived first, then its alarm: the episode never fired.
        assert_eq!(transitions(&quiet, &resolved), vec![]);
        // A late alarm moves the opening earlier: the same stretch, no transition.
        let mut extended = firing.clone();
        if let Some(episode) = extended.current_episode.as_mut() {
            episode.opened_at = at(0);
        }
        assert_eq!(transitions(&firing, &extended), vec![]);
        let refired = state(Status::Firing, Some(2), false);
        assert_eq!(
            transitions(&firing, &refired),
            vec![
                Transition::Closed {
                    episode: 1,
                    opened_at: at(1)
                },
                Transition::Opened {
                    episode: 2,
                    opened_at: at(2)
                }
            ]
        );
    }

    #[test]
    fn a_due_firing_message_is_sent_only_while_its_episode_fires() {
        let firing = state(Status::Firing, Some(1), false);
        let resolved = state(Status::Resolved, Some(1), false);
        let later = state(Status::Firing, Some(2), false);
        let m = MessageKind::Firing;
        assert_eq!(decide(m, 1, Some(&firing)), Decision::Send);
        assert_eq!(
            decide(m, 1, Some(&resolved)),
            Decision::Suppress("resolved before it was sent")
        );
        assert_eq!(
            decide(m, 1, Some(&later)),
            Decision::Suppress("a later episode replaced this one")
        );
        assert_eq!(
            decide(m, 1, None),
            Decision::Suppress("resolved before it was sent")
        );
    }

    #[test]
    fn an_acknowledgement_stops_reminders_but_not_the_first_message() {
        let acknowledged = state(Status::Firing, Some(1), true);
        assert_eq!(
            decide(MessageKind::Reminder, 1, Some(&acknowledged)),
            Decision::Suppress("acknowledged")
        );
        assert_eq!(
            decide(MessageKind::Firing, 1, Some(&acknowledged)),
            Decision::Send
        );
    }

    fn announced(
        status: DeliveryStatus,
        opened: Option<u32>,
        maybe_seen: bool,
    ) -> FiringAnnouncement {
        FiringAnnouncement {
            status,
            episode_opened_at: opened.map(at),
            maybe_seen,
        }
    }

    fn span(number: i64, opened: u32, closed: Option<u32>) -> EpisodeSpan {
        EpisodeSpan {
            number,
            opened_at: at(opened),
            closed_at: closed.map(at),
        }
    }

    #[test]
    fn a_resolved_message_follows_only_a_delivered_firing_message() {
        let closed = [span(1, 0, Some(10))];
        let decision = |firing: FiringAnnouncement| decide_resolved(1, &[firing], &closed).0;
        assert_eq!(
            decision(announced(DeliveryStatus::Delivered, Some(0), false)),
            Decision::Send
        );
        assert_eq!(
            decision(announced(DeliveryStatus::Pending, Some(0), false)),
            Decision::Defer
        );
        assert_eq!(
            decision(announced(DeliveryStatus::Delivering, Some(0), true)),
            Decision::Defer
        );
        for status in [DeliveryStatus::Suppressed, DeliveryStatus::Dead] {
            assert_eq!(
                decision(announced(status, Some(0), false)),
                Decision::Suppress("nobody was told this episode fired")
            );
        }
        assert_eq!(
            decide_resolved(1, &[], &closed).0,
            Decision::Suppress("nobody was told this episode fired")
        );
        // Rows from before the announced stretch was stored: the number alone decides.
        assert_eq!(
            decision(announced(DeliveryStatus::Delivered, None, false)),
            Decision::Send
        );
    }

    /// The breaker's case: the firing attempt timed out (the receiver showed it anyway),
    /// then the episode closed and the retry was suppressed. The chat shows an alert:
    /// it must also get its end.
    #[test]
    fn a_firing_message_that_may_have_been_seen_gets_its_resolved_message() {
        let closed = [span(1, 0, Some(1))];
        for status in [DeliveryStatus::Suppressed, DeliveryStatus::Dead] {
            assert_eq!(
                decide_resolved(1, &[announced(status, Some(0), true)], &closed).0,
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

    /// Episode 1 (alarm at :05) was announced; then a late alarm at :01 and recovery at
    /// :02 arrived. Episode 1 is now [:01, :02]; the announced alarm is episode 2.
    #[test]
    fn a_renumbered_stretch_is_resolved_when_it_ends_not_before() {
        let firing = [announced(DeliveryStatus::Delivered, Some(5), false)];
        // It still fires as episode 2: no "resolved" for it now.
        let still = [span(1, 1, Some(2)), span(2, 5, None)];
        assert_eq!(
            decide_resolved(1, &firing, &still).0,
            Decision::Suppress(
                "the announced stretch still fires (late history renumbered the episodes); its own cycle announces its end"
            )
        );
        // The late batch also held its recovery at :08: its end is reported, with the
        // times of the episode that contains it now.
        let ended = [span(1, 1, Some(2)), span(2, 5, Some(8))];
        let (decision, reported) = decide_resolved(1, &firing, &ended);
        assert_eq!(decision, Decision::Send);
        assert_eq!(reported, Some(&ended[1]));
        // Two episodes merged into one by a late alarm: the announced one (opened :05)
        // lies inside the merged episode 1 [:00, :07], which is closed.
        let merged = [span(1, 0, Some(7))];
        let (decision, reported) = decide_resolved(2, &firing, &merged);
        assert_eq!(decision, Decision::Send);
        assert_eq!(reported, Some(&merged[0]));
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let key = |episode, kind, reminder| {
            idempotency_key(
                "room-3f",
                "offline",
                episode,
                Some(at(0)),
                kind,
                reminder,
                "ops",
            )
        };
        assert_eq!(
            key(1, MessageKind::Firing, 0),
            key(1, MessageKind::Firing, 0)
        );
        let parsed = Uuid::parse_str(&key(1, MessageKind::Firing, 0)).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 5);
        assert_ne!(
            key(1, MessageKind::Firing, 0),
            idempotency_key(
                "room-3f",
                "offline",
                1,
                Some(at(0)),
                MessageKind::Firing,
                0,
                "chat"
            )
        );
        // The same number for another stretch of firing is another message.
        assert_ne!(
            key(1, MessageKind::Firing, 0),
            idempotency_key(
                "room-3f",
                "offline",
                1,
                Some(at(9)),
                MessageKind::Firing,
                0,
                "ops"
            )
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
