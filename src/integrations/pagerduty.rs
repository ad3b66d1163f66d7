//! PagerDuty Events API v2 (`/v2/enqueue`) alert events as ledger events.
//!
//! - `trigger` → an alarm on device `payload.source`; `resolve` → a recovery;
//!   `acknowledge` → the ledger's acknowledgement of the alert's current episode
//!   (recorded by the HTTP layer, which knows the alert's state).
//! - alert key: `dedup_key` (shortened with a hash past the ledger's 200 characters;
//!   PagerDuty allows 255). A trigger without one gets a UUIDv7, returned in the answer
//!   as PagerDuty does.
//! - `payload.severity`: `critical` → critical, `error` → major, `warning` → warning,
//!   `info` → info; `payload.summary` → summary; `payload.timestamp` → occurred_at;
//!   `payload.component`, `group` and `class` → labels; `custom_details`, `client`,
//!   `client_url`, `links`, `images` and the `dedup_key` → payload.
//! - `routing_key` is required, as by PagerDuty, and otherwise ignored: it is never
//!   stored, because PagerDuty integration keys act as credentials. Who sent an event
//!   is the bearer token's business.
//! - event id: `pd:<dedup key>:<action>:<timestamp>` when `payload.timestamp` is given,
//!   so a retried event is a duplicate. Without a timestamp there is nothing stable to
//!   derive an id from (a later incident may reuse the dedup key), so the event gets a
//!   UUIDv7 like a native event without `event_id`, and its receipt time as its time.
//!
//! Unknown fields are refused, as for native events: a misspelt `timestamp` must not
//! silently become "now".

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{fit_name, id_time, ledger_time, short_hash};
use crate::domain::{NewEvent, Severity};
use crate::submission::{normalize_time, validate_event};

/// The `source` of every event this mapping makes.
pub const SOURCE: &str = "pagerduty";
/// PagerDuty's own limits.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// A dedup key up to this long appears in the event id as is (ids hold at most 128).
const MAX_ID_KEY_CHARS: usize = 64;

const FIELDS: [&str; 8] = [
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "client",
    "client_url",
    "links",
    "images",
];
const PAYLOAD_FIELDS: [&str; 8] = [
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Resolve,
    Acknowledge,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Resolve => "resolve",
            Action::Acknowledge => "acknowledge",
        }
    }
}

/// A checked Events API v2 event, waiting only for the device it belongs to.
#[derive(Clone, Debug)]
pub struct PagerDutyEvent {
    pub action: Action,
    /// As given, or generated for a trigger without one; the answer returns it.
    pub dedup_key: String,
    /// The ledger's alert key for this dedup key.
    pub alert_key: String,
    /// `payload.source` (shortened like a key if too long): the device, when given.
    pub source: Option<String>,
    /// The native event, every field but `device_id`.
    native: Map<String, Value>,
}

/// `payload.timestamp`: RFC 3339, or ISO 8601 with a `+0000`-style offset as in
/// PagerDuty's own examples.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    ledger_time(text).or_else(|| {
        DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
            .ok()
            .and_then(|at| normalize_time(at.with_timezone(&Utc)))
    })
}

fn severity(text: &str) -> Option<Severity> {
    match text {
        "critical" => Some(Severity::Critical),
        "error" => Some(Severity::Major),
        "warning" => Some(Severity::Warning),
        "info" => Some(Severity::Info),
        _ => None,
    }
}

/// A non-blank string field, or `None` (blank counts as missing, as for PagerDuty).
fn text<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    at: &str,
    errors: &mut Vec<String>,
) -> Option<&'a str> {
    match object.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            errors.push(format!("'{at}{name}' must be a string"));
            None
        }
    }
}

/// Check an event body. Every problem is listed, in PagerDuty's style of message.
pub fn parse(body: &Value) -> Result<PagerDutyEvent, Vec<String>> {
    let Value::Object(event) = body else {
        return Err(vec!["the event must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    for key in event.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(format!("'{key}' is not a field of an Events API v2 event"));
        }
    }
    if text(event, "routing_key", "", &mut errors).is_none() {
        errors.push("'routing_key' is missing or blank".into());
    }
    let action = match text(event, "event_action", "", &mut errors) {
        Some("trigger") => Some(Action::Trigger),
        Some("resolve") => Some(Action::Resolve),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some(_) => {
            errors
                .push("'event_action' is invalid (must be trigger, acknowledge or resolve)".into());
            None
        }
        None => {
            errors.push("'event_action' is missing or blank".into());
            None
        }
    };
    let dedup_key = text(event, "dedup_key", "", &mut errors).map(str::to_string);
    if let Some(key) = &dedup_key {
        if key.chars().count() > MAX_DEDUP_KEY_CHARS {
            errors.push(format!(
                "'dedup_key' is longer than {MAX_DEDUP_KEY_CHARS} characters"
            ));
        }
        if key.chars().any(char::is_control) {
            errors.push("'dedup_key' must not contain control characters".into());
        }
    } else if matches!(action, Some(Action::Resolve | Action::Acknowledge)) {
        errors.push("'dedup_key' is missing or blank (resolve and acknowledge need it)".into());
    }
    let empty = Map::new();
    let payload = match event.get("payload") {
        None | Some(Value::Null) => {
            if action == Some(Action::Trigger) {
                errors.push("'payload' is missing".into());
            }
            &empty
        }
        Some(Value::Object(payload)) => payload,
        Some(_) => {
            errors.push("'payload' must be an object".into());
            &empty
        }
    };
    for key in payload.keys() {
        if !PAYLOAD_FIELDS.contains(&key.as_str()) {
            errors.push(format!(
                "'payload.{key}' is not a field of an Events API v2 payload"
            ));
        }
    }
    let trigger = action == Some(Action::Trigger);
    let summary = text(payload, "summary", "payload.", &mut errors);
    match summary {
        None if trigger => errors.push("'payload.summary' is missing or blank".into()),
        Some(s) if s.chars().count() > MAX_SUMMARY_CHARS => errors.push(format!(
            "'payload.summary' is longer than {MAX_SUMMARY_CHARS} characters"
        )),
        _ => {}
    }
    let source = text(payload, "source", "payload.", &mut errors);
    if source.is_none() && trigger {
        errors.push("'payload.source' is missing or blank".into());
    }
    if source.is_some_and(|s| s.chars().any(char::is_control)) {
        errors.push("'payload.source' must not contain control characters".into());
    }
    let severity = match text(payload, "severity", "payload.", &mut errors) {
        Some(s) => match severity(s) {
            Some(severity) => Some(severity),
            None => {
                errors.push(
                    "'payload.severity' is invalid (must be critical, error, warning or info)"
                        .into(),
                );
                None
            }
        },
        None => {
            if trigger {
                errors.push("'payload.severity' is missing or blank".into());
            }
            None
        }
    };
    let timestamp = match text(payload, "timestamp", "payload.", &mut errors) {
        Some(t) => match parse_timestamp(t) {
            Some(at) => Some(at),
            None => {
                errors.push(
                    "'payload.timestamp' must be an ISO 8601 timestamp with an offset, e.g. 2026-12-03T21:05:00.200+0000"
                        .into(),
                );
                None
            }
        },
        None => None,
    };
    let mut labels = Map::new();
    for name in ["component", "group", "class"] {
        if let Some(value) = text(payload, name, "payload.", &mut errors) {
            labels.insert(name.to_string(), json!(value));
        }
    }
    let (Some(action), true) = (action, errors.is_empty()) else {
        return Err(errors);
    };

    let dedup_key = dedup_key.unwrap_or_else(|| Uuid::now_v7().to_string());
    let alert_key = fit_name(&dedup_key);
    let mut kept = Map::new();
    kept.insert("dedup_key".into(), json!(dedup_key));
    if let Some(details) = payload.get("custom_details").filter(|v| !v.is_null()) {
        kept.insert("custom_details".into(), details.clone());
    }
    for name in ["client", "client_url", "links", "images"] {
        if let Some(value) = event.get(name).filter(|v| !v.is_null()) {
            kept.insert(name.into(), value.clone());
        }
    }
    let mut native = Map::new();
    if let Some(at) = timestamp {
        let id_key = if dedup_key.chars().count() <= MAX_ID_KEY_CHARS {
            dedup_key.clone()
        } else {
            short_hash(&dedup_key, 32)
        };
        native.insert(
            "event_id".into(),
            json!(format!("pd:{id_key}:{}:{}", action.as_str(), id_time(&at))),
        );
        native.insert("occurred_at".into(), json!(id_time(&at)));
    }
    native.insert("alert_key".into(), json!(alert_key));
    native.insert(
        "kind".into(),
        json!(if action == Action::Trigger {
            "alarm"
        } else {
            "recovery"
        }),
    );
    if action == Action::Trigger {
        native.insert("severity".into(), json!(severity.map(Severity::as_str)));
    }
    native.insert("summary".into(), json!(summary));
    if !labels.is_empty() {
        native.insert("labels".into(), Value::Object(labels));
    }
    native.insert("payload".into(), Value::Object(kept));
    native.insert("source".into(), json!(SOURCE));
    Ok(PagerDutyEvent {
        action,
        dedup_key,
        alert_key,
        source: source.map(fit_name),
        native,
    })
}

impl PagerDutyEvent {
    /// The ledger event on `device_id`, checked by every rule a native event meets.
    /// Errors name the PagerDuty field they come from.
    pub fn event_for(&self, device_id: &str) -> Result<NewEvent, Vec<String>> {
        let mut native = self.native.clone();
        native.insert("device_id".into(), json!(device_id));
        validate_event(&native, "").map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let field = match e.field.as_str() {
                        "device_id" => "payload.source".to_string(),
                        "alert_key" | "event_id" => "dedup_key".to_string(),
                        "occurred_at" => "payload.timestamp".to_string(),
                        "summary" => "payload.summary".to_string(),
                        other => match other.strip_prefix("labels.") {
                            Some(label) => format!("payload.{label}"),
                            None => match other.strip_prefix("payload.") {
                                Some(rest) if rest.starts_with("custom_details") => {
                                    format!("payload.{rest}")
                                }
                                Some(rest) => rest.to_string(),
                                None => other.to_string(),
                            },
                        },
                    };
                    format!("'{field}' {}", e.detail)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerduty_timestamps_without_a_colon_in_the_offset_parse() {
        assert_eq!(
            parse_timestamp("2015-07-17T08:42:58.315+0000").map(|t| id_time(&t)),
            Some("2015-07-17T08:42:58.315000Z".to_string())
        );
        assert_eq!(
            parse_timestamp("2015-07-17T10:42:58.315+02:00").map(|t| id_time(&t)),
            Some("2015-07-17T08:42:58.315000Z".to_string())
        );
        assert_eq!(parse_timestamp("2015-07-17T08:42:58"), None);
    }

    #[test]
    fn a_trigger_maps_onto_an_alarm() {
        let event = parse(&json!({
            "routing_key": "R0UTING", "event_action": "trigger", "dedup_key": "disk-full",
            "payload": {"summary": "disk full", "source": "db-1", "severity": "error",
                        "timestamp": "2026-12-03T10:00:00.000+0000", "class": "disk",
                        "custom_details": {"free": "0%"}},
            "client": "cron"
        }))
        .expect("valid");
        let event = event.event_for("db-1").expect("valid native event");
        assert_eq!(
            event.event_id,
            "pd:disk-full:trigger:2026-12-03T10:00:00.000000Z"
        );
        assert_eq!(event.alert_key, "disk-full");
        assert_eq!(event.severity, Some(Severity::Major));
        assert_eq!(event.labels.get("class").map(String::as_str), Some("disk"));
        assert_eq!(
            event.payload,
            Some(
                json!({"dedup_key": "disk-full", "custom_details": {"free": "0%"}, "client": "cron"})
            )
        );
    }
}
