//! The events recorded in a device stream. Their JSON form is what the event store keeps,
//! so field names here are part of the on-disk format: add fields with defaults, never
//! rename or remove one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

/// Whether an event raises or clears its alert, or acknowledges that someone is on it.
///
/// The declaration order matters: in the ledger's total order an alarm sorts before a
/// recovery with the same effective time, so ties resolve; an acknowledgement sorts
/// last, so it never claims an episode that opens at the very same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Alarm,
    Recovery,
    /// Recorded by `POST /v1/devices/{d}/alerts/{k}/ack`, never submitted as an event:
    /// `source` holds who acknowledged, `summary` why. It stops reminders for the
    /// episode firing at its time and changes nothing else.
    Acknowledgement,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Alarm => "alarm",
            Kind::Recovery => "recovery",
            Kind::Acknowledgement => "acknowledgement",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::Major,
        Severity::Minor,
        Severity::Warning,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One alarm or recovery as it was recorded. `recorded_at` is the server's clock at the
/// moment the event was first appended; everything else is what the sender submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: String,
    pub kind: Kind,
    pub alert_key: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "stored_time::optional"
    )]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(with = "stored_time")]
    pub recorded_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolves: Option<String>,
}

/// What the event store keeps for a device. Internally tagged so that every variant's
/// `event_id` and `alert_key` sit at the top of the stored JSON, where the store's
/// generated columns index them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceEvent {
    Recorded(RecordedEvent),
}

impl DeviceEvent {
    pub fn recorded(&self) -> &RecordedEvent {
        match self {
            DeviceEvent::Recorded(event) => event,
        }
    }
}

impl DomainEvent for DeviceEvent {
    fn event_type(&self) -> String {
        match self {
            DeviceEvent::Recorded(event) => event.kind.as_str().to_string(),
        }
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// Times in the stored JSON always carry six fractional digits and `Z`, so that as text
/// they sort chronologically and the log can be filtered by time in SQL on both engines.
pub mod stored_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

    pub fn format(at: &DateTime<Utc>) -> String {
        at.format(FORMAT).to_string()
    }

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    pub mod optional {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            at: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| {
                    DateTime::parse_from_rfc3339(&text)
                        .map(|at| at.with_timezone(&Utc))
                        .map_err(serde::de::Error::custom)
                })
                .transpose()
        }
    }
}
