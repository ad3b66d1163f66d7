//! Commands a device stream accepts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::{Kind, RecordedEvent, Severity};
use super::fold::{Acknowledged, AlertFold, Status};

/// An alarm or recovery as a sender submitted it, already validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_id: String,
    pub device_id: String,
    pub alert_key: String,
    pub kind: Kind,
    pub occurred_at: Option<DateTime<Utc>>,
    pub severity: Option<Severity>,
    pub summary: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub payload: Option<serde_json::Value>,
    pub source: Option<String>,
    pub resolves: Option<String>,
}

impl NewEvent {
    /// Idempotency compares what the sender said, never when we heard it.
    pub fn same_content_as(&self, recorded: &RecordedEvent) -> bool {
        self.event_id == recorded.event_id
            && self.kind == recorded.kind
            && self.alert_key == recorded.alert_key
            && self.occurred_at == recorded.occurred_at
            && self.severity == recorded.severity
            && self.summary == recorded.summary
            && self.labels == recorded.labels
            && self.payload == recorded.payload
            && self.source == recorded.source
            && self.resolves == recorded.resolves
    }

    pub fn into_recorded(self, recorded_at: DateTime<Utc>) -> RecordedEvent {
        RecordedEvent {
            event_id: self.event_id,
            kind: self.kind,
            alert_key: self.alert_key,
            occurred_at: self.occurred_at,
            recorded_at,
            severity: self.severity,
            summary: self.summary,
            labels: self.labels,
            payload: self.payload,
            source: self.source,
            resolves: self.resolves,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum DeviceCommand {
    /// Append these events, in this order. The caller has already removed events whose
    /// id the stream holds (see `ledger`), because the set of ids of a long stream does
    /// not belong in memory.
    Record(Vec<NewEvent>),
}

/// What acknowledging an alert whose recorded events fold to `alert` comes to, decided
/// against one stream version so that concurrent acknowledgements and a racing recovery
/// cannot both pass the check (the ledger retries the decision on a version conflict).
#[derive(Clone, Debug, PartialEq)]
pub enum AckDecision {
    /// Record an acknowledgement of this episode. `occurred_at` is set only when the
    /// episode opened after `now` (an alarm dated ahead, within the skew bound): the
    /// acknowledgement then takes the opening time, where it sorts right after the
    /// opening alarm, instead of falling before the episode as a stray.
    Record {
        episode: i64,
        occurred_at: Option<DateTime<Utc>>,
    },
    /// Someone acknowledged this episode first: record nothing.
    AlreadyAcknowledged {
        episode: i64,
        existing: Acknowledged,
    },
    /// The alert is resolved: there is nothing to acknowledge.
    NotFiring,
}

pub fn decide_acknowledgement(alert: &AlertFold, now: DateTime<Utc>) -> AckDecision {
    match (&alert.state.status, &alert.state.current_episode) {
        (Status::Firing, Some(episode)) => match &episode.acknowledged {
            Some(existing) => AckDecision::AlreadyAcknowledged {
                episode: episode.number,
                existing: existing.clone(),
            },
            None => AckDecision::Record {
                episode: episode.number,
                occurred_at: (episode.opened_at > now).then_some(episode.opened_at),
            },
        },
        _ => AckDecision::NotFiring,
    }
}

/// A retried acknowledgement is the same one when it names the same alert, person and
/// reason; its time is not compared, because the ledger chose it, not the sender.
pub fn same_acknowledgement(event: &NewEvent, recorded: &RecordedEvent) -> bool {
    recorded.kind == Kind::Acknowledgement
        && event.alert_key == recorded.alert_key
        && event.source == recorded.source
        && event.summary == recorded.summary
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::domain::fold::{fold, FoldConfig};

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap() + Duration::milliseconds(ms)
    }

    fn event(id: &str, kind: Kind, occurred_ms: i64, recorded_ms: i64) -> RecordedEvent {
        RecordedEvent {
            event_id: id.to_string(),
            kind,
            alert_key: "offline".to_string(),
            occurred_at: Some(at(occurred_ms)),
            recorded_at: at(recorded_ms),
            severity: None,
            summary: None,
            labels: BTreeMap::new(),
            payload: None,
            source: Some("ana".to_string()),
            resolves: None,
        }
    }

    #[test]
    fn given_a_firing_alert_when_acknowledged_then_its_episode_is_recorded_at_recording_time() {
        let alert = fold(&[event("a1", Kind::Alarm, 0, 10)], &FoldConfig::default());
        assert_eq!(
            decide_acknowledgement(&alert, at(60_000)),
            AckDecision::Record {
                episode: 1,
                occurred_at: None
            }
        );
    }

    #[test]
    fn given_an_alarm_dated_ahead_when_acknowledged_then_the_ack_takes_the_opening_time() {
        // Alarm says 09:02:00, recorded at 09:00:00 (within the five-minute skew bound).
        let alarm = event("a1", Kind::Alarm, 120_000, 0);
        let alert = fold(std::slice::from_ref(&alarm), &FoldConfig::default());
        let decision = decide_acknowledgement(&alert, at(1_000));
        assert_eq!(
            decision,
            AckDecision::Record {
                episode: 1,
                occurred_at: Some(at(120_000))
            }
        );
        // And the acknowledgement recorded with that time does acknowledge episode 1.
        let mut ack = event("ack1", Kind::Acknowledgement, 120_000, 1_000);
        ack.occurred_at = Some(at(120_000));
        let after = fold(&[alarm, ack], &FoldConfig::default());
        let acknowledged = after.episodes[0]
            .acknowledged
            .as_ref()
            .expect("acknowledged");
        assert_eq!(acknowledged.event_id, "ack1");
    }

    #[test]
    fn given_an_acknowledged_episode_when_acknowledged_again_then_the_first_is_shown() {
        let alert = fold(
            &[
                event("a1", Kind::Alarm, 0, 0),
                event("ack1", Kind::Acknowledgement, 5_000, 5_000),
            ],
            &FoldConfig::default(),
        );
        match decide_acknowledgement(&alert, at(10_000)) {
            AckDecision::AlreadyAcknowledged { episode, existing } => {
                assert_eq!(episode, 1);
                assert_eq!(existing.event_id, "ack1");
                assert_eq!(existing.at, at(5_000));
            }
            other => panic!("expected AlreadyAcknowledged, got {other:?}"),
        }
    }

    #[test]
    fn given_a_resolved_or_empty_alert_when_acknowledged_then_there_is_nothing_to_acknowledge() {
        let resolved = fold(
            &[
                event("a1", Kind::Alarm, 0, 0),
                event("r1", Kind::Recovery, 242, 242),
            ],
            &FoldConfig::default(),
        );
        assert_eq!(
            decide_acknowledgement(&resolved, at(1_000)),
            AckDecision::NotFiring
        );
        let only_recovery = fold(&[event("r1", Kind::Recovery, 0, 0)], &FoldConfig::default());
        assert_eq!(
            decide_acknowledgement(&only_recovery, at(1_000)),
            AckDecision::NotFiring
        );
    }

    #[test]
    fn given_a_refire_when_acknowledged_then_the_new_episode_is_unacknowledged() {
        let alert = fold(
            &[
                event("a1", Kind::Alarm, 0, 0),
                event("ack1", Kind::Acknowledgement, 1_000, 1_000),
                event("r1", Kind::Recovery, 2_000, 2_000),
                event("a2", Kind::Alarm, 3_000, 3_000),
            ],
            &FoldConfig::default(),
        );
        assert_eq!(
            decide_acknowledgement(&alert, at(4_000)),
            AckDecision::Record {
                episode: 2,
                occurred_at: None
            }
        );
    }
}
