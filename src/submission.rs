//! Parsing and validating submitted events, shared by the HTTP API and `import`.
//!
//! Every rule of BRIEF §4 is checked here, and every bad field is reported (not only the
//! first), so a sender can fix a submission in one round. JSON objects with a repeated
//! key are refused: `{"kind":"alarm","kind":"recovery"}` must not quietly mean either.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{Kind, NewEvent, Severity};
use crate::error::FieldError;

pub const MAX_BATCH: usize = 1000;
pub const MAX_EVENT_ID_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_SUMMARY_CHARS: usize = 1024;
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_CHARS: usize = 128;
pub const MAX_LABEL_VALUE_CHARS: usize = 1024;
pub const DEFAULT_ALERT_KEY: &str = "default";

const FIELDS: [&str; 11] = [
    "event_id",
    "device_id",
    "alert_key",
    "kind",
    "occurred_at",
    "severity",
    "summary",
    "labels",
    "payload",
    "source",
    "resolves",
];

/// A JSON value parsed with repeated object keys refused.
pub struct StrictJson(pub Value);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parse a request body or an import line.
pub fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<StrictJson>(bytes)
        .map(|StrictJson(value)| value)
        .map_err(|e| e.to_string())
}

/// A body is one event object or an array of them.
pub enum Submission {
    One(NewEvent),
    Batch(Vec<NewEvent>),
}

pub fn validate_body(body: Value) -> Result<Submission, Vec<FieldError>> {
    match body {
        Value::Object(object) => validate_event(&object, "").map(Submission::One),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(vec![FieldError::new(
                    "",
                    "a batch must hold at least one event",
                )]);
            }
            if items.len() > MAX_BATCH {
                return Err(vec![FieldError::new(
                    "",
                    format!(
                        "a batch holds at most {MAX_BATCH} events, this one {}",
                        items.len()
                    ),
                )]);
            }
            let mut events = Vec::with_capacity(items.len());
            let mut errors = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let prefix = format!("[{index}].");
                match item {
                    Value::Object(object) => match validate_event(object, &prefix) {
                        Ok(event) => events.push(event),
                        Err(mut bad) => errors.append(&mut bad),
                    },
                    _ => errors.push(FieldError::new(
                        format!("[{index}]"),
                        "each batch item must be an event object",
                    )),
                }
            }
            if errors.is_empty() {
                Ok(Submission::Batch(events))
            } else {
                Err(errors)
            }
        }
        _ => Err(vec![FieldError::new(
            "",
            "expected an event object or an array of event objects",
        )]),
    }
}

/// Microseconds (the finest precision both engines store), a leap second read as the
/// start of the next second (as PostgreSQL does), and years 1970–9999 only, so stored
/// times print as RFC 3339 and sort as text.
pub fn normalize_time(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let at = if at.timestamp_subsec_nanos() >= 1_000_000_000 {
        DateTime::from_timestamp(at.timestamp() + 1, 0)?
    } else {
        at.trunc_subsecs(6)
    };
    let earliest = DateTime::from_timestamp(0, 0)?;
    let latest = DateTime::from_timestamp(253_402_300_799, 0)?;
    (earliest..=latest).contains(&at).then_some(at)
}

/// The path of the first string (or object key) within `value` that holds a NUL.
fn nul_in(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(path.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(path.to_string())
            } else {
                nul_in(item, &format!("{path}.{key}"))
            }
        }),
        _ => None,
    }
}

/// Checks a name-like string: 1..=max chars, no control characters.
pub fn check_name(value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err("must not be empty".into());
    }
    if chars > max {
        return Err(format!("must be at most {max} characters, got {chars}"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// An acknowledgement as `POST /v1/devices/{d}/alerts/{k}/ack` takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct AcknowledgementRequest {
    pub by: String,
    pub reason: Option<String>,
    /// Optional, so that a retried request is a duplicate rather than a second ack.
    pub event_id: Option<String>,
}

/// `{"by": "...", "reason": "...", "event_id": "..."}`; `by` is required.
pub fn validate_acknowledgement(body: &Value) -> Result<AcknowledgementRequest, Vec<FieldError>> {
    let Value::Object(object) = body else {
        return Err(vec![FieldError::new("", "expected a JSON object")]);
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if !["by", "reason", "event_id"].contains(&key.as_str()) {
            errors.push(FieldError::new(key.clone(), "unknown field"));
        }
    }
    let mut text = |name: &str, max: usize, required: bool| -> Option<String> {
        match optional(object, name) {
            None if required => {
                errors.push(FieldError::new(name, "is required"));
                None
            }
            None => None,
            Some(Value::String(text)) if text.contains('\0') => {
                errors.push(FieldError::new(
                    name,
                    "must not contain NUL characters (\\u0000)",
                ));
                None
            }
            Some(Value::String(text)) => {
                let checked = if name == "reason" {
                    let chars = text.chars().count();
                    if chars > max {
                        Err(format!("must be at most {max} characters, got {chars}"))
                    } else {
                        Ok(())
                    }
                } else {
                    check_name(text, max)
                };
                match checked {
                    Ok(()) => Some(text.clone()),
                    Err(why) => {
                        errors.push(FieldError::new(name, why));
                        None
                    }
                }
            }
            Some(_) => {
                errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    };
    let by = text("by", MAX_NAME_CHARS, true);
    let reason = text("reason", MAX_SUMMARY_CHARS, false);
    let event_id = text("event_id", MAX_EVENT_ID_CHARS, false);
    match by {
        Some(by) if errors.is_empty() => Ok(AcknowledgementRequest {
            by,
            reason,
            event_id,
        }),
        _ => Err(errors),
    }
}

fn optional<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

pub fn validate_event(
    object: &Map<String, Value>,
    prefix: &str,
) -> Result<NewEvent, Vec<FieldError>> {
    let mut errors = Vec::new();
    let field = |name: &str| format!("{prefix}{name}");
    let known: HashSet<&str> = FIELDS.into_iter().collect();
    for key in object.keys() {
        if !known.contains(key.as_str()) {
            errors.push(FieldError::new(field(key), "unknown field"));
        }
    }

    let name_field =
        |name: &str, max: usize, required: bool, errors: &mut Vec<FieldError>| match optional(
            object, name,
        ) {
            None if required => {
                errors.push(FieldError::new(field(name), "is required"));
                None
            }
            None => None,
            Some(Value::String(text)) => match check_name(text, max) {
                Ok(()) => Some(text.clone()),
                Err(why) => {
                    errors.push(FieldError::new(field(name), why));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new(field(name), "must be a string"));
                None
            }
        };
    // NUL cannot be stored by PostgreSQL's JSON types; refuse it on both engines alike.
    for (key, value) in object {
        if let Some(path) = nul_in(value, &field(key)) {
            errors.push(FieldError::new(
                path,
                "must not contain NUL characters (\\u0000)",
            ));
        }
    }
    let event_id = name_field("event_id", MAX_EVENT_ID_CHARS, false, &mut errors);
    let device_id = name_field("device_id", MAX_NAME_CHARS, true, &mut errors);
    let alert_key = name_field("alert_key", MAX_NAME_CHARS, false, &mut errors);
    let source = name_field("source", MAX_NAME_CHARS, false, &mut errors);
    let resolves = name_field("resolves", MAX_EVENT_ID_CHARS, false, &mut errors);

    let kind = match optional(object, "kind") {
        None => {
            errors.push(FieldError::new(field("kind"), "is required"));
            None
        }
        Some(Value::String(k)) if k == "alarm" => Some(Kind::Alarm),
        Some(Value::String(k)) if k == "recovery" => Some(Kind::Recovery),
        Some(_) => {
            errors.push(FieldError::new(
                field("kind"),
                "must be \"alarm\" or \"recovery\"",
            ));
            None
        }
    };
    if kind == Some(Kind::Alarm) && resolves.is_some() {
        errors.push(FieldError::new(
            field("resolves"),
            "only a recovery may resolve an alarm",
        ));
    }

    let occurred_at = match optional(object, "occurred_at") {
        None => None,
        Some(Value::String(text)) => match DateTime::parse_from_rfc3339(text) {
            Ok(at) => match normalize_time(at.with_timezone(&Utc)) {
                Some(at) => Some(at),
                None => {
                    errors.push(FieldError::new(
                        field("occurred_at"),
                        "must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
                    ));
                    None
                }
            },
            Err(_) => {
                errors.push(FieldError::new(
                    field("occurred_at"),
                    "must be an RFC 3339 timestamp with an offset, e.g. 2026-12-03T21:05:00.200Z",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(field("occurred_at"), "must be a string"));
            None
        }
    };

    let severity = match optional(object, "severity") {
        None => None,
        Some(Value::String(text)) => match Severity::parse(text) {
            Some(severity) => Some(severity),
            None => {
                errors.push(FieldError::new(
                    field("severity"),
                    "must be one of critical, major, minor, warning, info",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(field("severity"), "must be a string"));
            None
        }
    };

    let summary = match optional(object, "summary") {
        None => None,
        Some(Value::String(text)) => {
            let chars = text.chars().count();
            if chars > MAX_SUMMARY_CHARS {
                errors.push(FieldError::new(
                    field("summary"),
                    format!("must be at most {MAX_SUMMARY_CHARS} characters, got {chars}"),
                ));
                None
            } else {
                Some(text.clone())
            }
        }
        Some(_) => {
            errors.push(FieldError::new(field("summary"), "must be a string"));
            None
        }
    };

    let mut labels = BTreeMap::new();
    match optional(object, "labels") {
        None => {}
        Some(Value::Object(map)) => {
            if map.len() > MAX_LABELS {
                errors.push(FieldError::new(
                    field("labels"),
                    format!("at most {MAX_LABELS} labels, got {}", map.len()),
                ));
            }
            for (key, value) in map {
                let at = format!("{prefix}labels.{key}");
                if let Err(why) = check_name(key, MAX_LABEL_KEY_CHARS) {
                    errors.push(FieldError::new(at.clone(), format!("label name {why}")));
                }
                match value {
                    Value::String(text) if text.chars().count() <= MAX_LABEL_VALUE_CHARS => {
                        labels.insert(key.clone(), text.clone());
                    }
                    Value::String(_) => errors.push(FieldError::new(
                        at,
                        format!("must be at most {MAX_LABEL_VALUE_CHARS} characters"),
                    )),
                    _ => errors.push(FieldError::new(at, "label values must be strings")),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            field("labels"),
            "must be an object of strings",
        )),
    }

    let payload = match optional(object, "payload") {
        None => None,
        Some(value) => {
            let size = serde_json::to_vec(value)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_PAYLOAD_BYTES {
                errors.push(FieldError::new(
                    field("payload"),
                    format!("must be at most {MAX_PAYLOAD_BYTES} bytes as JSON, got {size}"),
                ));
                None
            } else {
                Some(value.clone())
            }
        }
    };

    match (device_id, kind) {
        (Some(device_id), Some(kind)) if errors.is_empty() => Ok(NewEvent {
            event_id: event_id.unwrap_or_else(|| Uuid::now_v7().to_string()),
            device_id,
            alert_key: alert_key.unwrap_or_else(|| DEFAULT_ALERT_KEY.to_string()),
            kind,
            occurred_at,
            severity,
            summary,
            labels,
            payload,
            source,
            resolves,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(body: &str) -> Vec<String> {
        match validate_body(parse_json(body.as_bytes()).expect("valid JSON")) {
            Ok(_) => vec![],
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn a_repeated_key_is_refused_at_parse_time() {
        let error = parse_json(br#"{"kind":"alarm","kind":"recovery"}"#).unwrap_err();
        assert!(error.contains("duplicate key `kind`"), "{error}");
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(
            errors_of(r#"{"occured_at":"x","kind":"alarms","severity":"high"}"#),
            vec!["occured_at", "device_id", "kind", "severity"]
        );
    }

    #[test]
    fn batch_errors_carry_the_item_index() {
        assert_eq!(
            errors_of(r#"[{"device_id":"a","kind":"alarm"},{"device_id":"","kind":"alarm"}]"#),
            vec!["[1].device_id"]
        );
    }

    #[test]
    fn a_missing_event_id_gets_a_uuid_v7_and_alert_key_defaults() {
        let value = parse_json(br#"{"device_id":"d","kind":"alarm"}"#).unwrap();
        let Ok(Submission::One(event)) = validate_body(value) else {
            panic!("expected one valid event")
        };
        assert_eq!(
            Uuid::parse_str(&event.event_id).unwrap().get_version_num(),
            7
        );
        assert_eq!(event.alert_key, "default");
    }

    #[test]
    fn a_timestamp_without_offset_is_refused() {
        assert_eq!(
            errors_of(r#"{"device_id":"d","kind":"alarm","occurred_at":"2026-12-03T10:00:00"}"#),
            vec!["occurred_at"]
        );
    }
}
