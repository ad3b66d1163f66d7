//! Commands a device stream accepts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::{Kind, RecordedEvent, Severity};

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
