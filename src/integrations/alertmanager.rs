//! Prometheus Alertmanager's webhook notification (payload version 4) as ledger events.
//!
//! Each alert of a notification becomes one event:
//!
//! - `firing` → an alarm at `startsAt`; `resolved` → a recovery at `endsAt` whose
//!   `resolves` names the alarm the same alert's firing notification records, so it is
//!   never placed before that alarm (ledger rule 2), and a resolved notification whose
//!   firing one never reached us is still recorded and resolves the alert.
//! - device: the value of a configurable label (default `instance`);
//! - alert key: `alertname` and the rest of the labels, except the device label, in
//!   Prometheus' own notation, `InstanceDown{job="node",severity="page"}`; shortened with
//!   a hash when longer than the ledger allows;
//! - event id: `am:<fingerprint>:<status>:<startsAt>`. Alertmanager re-sends an alert
//!   on every group interval and after failures: the same alert instance always gets
//!   the same id, so the re-send is a duplicate;
//! - labels are kept as the event's labels, annotations (with the fingerprint,
//!   generatorURL and startsAt) as its payload, `annotations.summary` (or else
//!   `annotations.description`) as its summary, and the `severity` label as its
//!   severity when it names one of ours.
//!
//! Fields this mapping does not use are ignored rather than refused: the format belongs
//! to Alertmanager, which adds fields over time (as `truncatedAlerts` was added).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{escape, fit_name, id_time, ledger_time, short_hash};
use crate::domain::{NewEvent, Severity};
use crate::error::FieldError;
use crate::submission::{validate_event, MAX_BATCH, MAX_SUMMARY_CHARS};

pub const DEFAULT_DEVICE_LABEL: &str = "instance";
/// The `source` of every event this mapping makes.
pub const SOURCE: &str = "alertmanager";
/// Alertmanager fingerprints are 16 hex digits; anything that is not an identifier of
/// reasonable size is refused rather than built into event ids.
const MAX_FINGERPRINT_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertmanagerSettings {
    /// The label whose value is the device id.
    pub device_label: String,
}

impl Default for AlertmanagerSettings {
    fn default() -> Self {
        Self {
            device_label: DEFAULT_DEVICE_LABEL.to_string(),
        }
    }
}

/// One alert of a notification: its event, or what is wrong with it (fields named as
/// in the notification, `alerts[2].labels.instance`).
pub type MappedAlert = Result<NewEvent, Vec<FieldError>>;

/// Map a notification. `Err` when the notification as a whole is unusable (not an
/// object, not version 4, no alerts); otherwise one result per alert, in order.
pub fn map_notification(
    body: &Value,
    settings: &AlertmanagerSettings,
) -> Result<Vec<MappedAlert>, Vec<FieldError>> {
    let Value::Object(notification) = body else {
        return Err(vec![FieldError::new(
            "",
            "expected an Alertmanager webhook notification (a JSON object)",
        )]);
    };
    let mut errors = Vec::new();
    match notification.get("version") {
        Some(Value::String(v)) if v == "4" => {}
        None | Some(Value::Null) => errors.push(FieldError::new("version", "is required")),
        Some(_) => errors.push(FieldError::new(
            "version",
            "must be \"4\" (the webhook payload version this endpoint reads)",
        )),
    }
    let alerts = match notification.get("alerts") {
        Some(Value::Array(alerts)) if alerts.is_empty() => {
            errors.push(FieldError::new("alerts", "must hold at least one alert"));
            None
        }
        Some(Value::Array(alerts)) if alerts.len() > MAX_BATCH => {
            errors.push(FieldError::new(
                "alerts",
                format!(
                    "at most {MAX_BATCH} alerts per notification, got {} (set max_alerts in webhook_config)",
                    alerts.len()
                ),
            ));
            None
        }
        Some(Value::Array(alerts)) => Some(alerts),
        None | Some(Value::Null) => {
            errors.push(FieldError::new("alerts", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("alerts", "must be an array of alerts"));
            None
        }
    };
    match alerts {
        Some(alerts) if errors.is_empty() => Ok(alerts
            .iter()
            .enumerate()
            .map(|(index, alert)| map_alert(index, alert, settings))
            .collect()),
        _ => Err(errors),
    }
}

/// A string-valued object (`labels`, `annotations`), with each non-string value named.
fn strings(
    alert: &Map<String, Value>,
    name: &str,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<BTreeMap<String, String>> {
    match alert.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            let mut out = BTreeMap::new();
            for (key, value) in map {
                match value {
                    Value::String(text) => {
                        out.insert(key.clone(), text.clone());
                    }
                    _ => errors.push(FieldError::new(
                        format!("{at}{name}.{key}"),
                        "must be a string",
                    )),
                }
            }
            Some(out)
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("{at}{name}"),
                "must be an object of strings",
            ));
            None
        }
    }
}

/// A required RFC 3339 time field of an alert.
fn time_field(
    alert: &Map<String, Value>,
    name: &str,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
    match alert.get(name) {
        Some(Value::String(text)) => match ledger_time(text) {
            Some(time) => Some((text.clone(), time)),
            None => {
                errors.push(FieldError::new(
                    format!("{at}{name}"),
                    "must be an RFC 3339 timestamp between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
                ));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldError::new(format!("{at}{name}"), "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(format!("{at}{name}"), "must be a string"));
            None
        }
    }
}

/// The alert key: `alertname` then every other label but the device label, sorted by
/// name, as Prometheus writes a series: `InstanceDown{job="node",severity="page"}`.
pub fn alert_key(labels: &BTreeMap<String, String>, device_label: &str) -> String {
    let name = labels.get("alertname").map(String::as_str).unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(key, _)| key.as_str() != "alertname" && key.as_str() != device_label)
        .map(|(key, value)| format!("{}=\"{}\"", escape(key), escape(value)))
        .collect();
    let full = if rest.is_empty() {
        escape(name)
    } else {
        format!("{}{{{}}}", escape(name), rest.join(","))
    };
    fit_name(&full)
}

/// Our severity for the alert's `severity` label, when it names one (case aside);
/// `error` is read as `major`. Any other value is kept in the labels only.
pub fn severity(label: Option<&String>) -> Option<Severity> {
    let label = label?.to_ascii_lowercase();
    match label.as_str() {
        "error" => Some(Severity::Major),
        other => Severity::parse(other),
    }
}

/// Where a native event field came from in the alert, for error messages.
fn alert_field(native: &str, at: &str, device_label: &str, time: &str) -> String {
    let name = match native {
        "device_id" => format!("labels.{device_label}"),
        "alert_key" => "labels".to_string(),
        "summary" => "annotations.summary".to_string(),
        "occurred_at" => time.to_string(),
        "event_id" | "resolves" => "fingerprint".to_string(),
        other => other.strip_prefix("payload.").unwrap_or(other).to_string(),
    };
    format!("{at}{name}")
}

fn map_alert(index: usize, alert: &Value, settings: &AlertmanagerSettings) -> MappedAlert {
    let at = format!("alerts[{index}].");
    let Value::Object(alert) = alert else {
        return Err(vec![FieldError::new(
            format!("alerts[{index}]"),
            "must be an alert object",
        )]);
    };
    let mut errors = Vec::new();
    let firing = match alert.get("status").and_then(Value::as_str) {
        Some("firing") => Some(true),
        Some("resolved") => Some(false),
        _ => {
            errors.push(FieldError::new(
                format!("{at}status"),
                "must be \"firing\" or \"resolved\"",
            ));
            None
        }
    };
    let labels = strings(alert, "labels", &at, &mut errors);
    if labels.is_none() && !errors.iter().any(|e| e.field == format!("{at}labels")) {
        errors.push(FieldError::new(format!("{at}labels"), "is required"));
    }
    let labels = labels.unwrap_or_default();
    let device_label = settings.device_label.as_str();
    if !labels.contains_key(device_label) {
        errors.push(FieldError::new(
            format!("{at}labels.{device_label}"),
            "is required: the device id is taken from this label",
        ));
    }
    if !labels.contains_key("alertname") {
        errors.push(FieldError::new(
            format!("{at}labels.alertname"),
            "is required",
        ));
    }
    let annotations = strings(alert, "annotations", &at, &mut errors).unwrap_or_default();
    let starts = time_field(alert, "startsAt", &at, &mut errors);
    let ends = match firing {
        // A firing alert's endsAt is a guess (or the zero time): never used.
        Some(false) => time_field(alert, "endsAt", &at, &mut errors),
        _ => None,
    };
    let fingerprint = match alert.get("fingerprint") {
        None | Some(Value::Null) => None,
        Some(Value::String(fp))
            if !fp.is_empty()
                && fp.len() <= MAX_FINGERPRINT_CHARS
                && fp.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            Some(fp.clone())
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("{at}fingerprint"),
                format!("must be 1 to {MAX_FINGERPRINT_CHARS} letters or digits"),
            ));
            None
        }
    };
    let generator_url = match alert.get("generatorURL") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => Some(url.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{at}generatorURL"),
                "must be a string",
            ));
            None
        }
    };
    let (Some(firing), Some((starts_text, starts_at)), true) = (firing, starts, errors.is_empty())
    else {
        return Err(errors);
    };
    // Without Alertmanager's fingerprint (senders older than 0.19, or imitations), a
    // hash of the label set identifies the alert just as well.
    let fingerprint = fingerprint.unwrap_or_else(|| {
        let all: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{}=\"{}\"", escape(k), escape(v)))
            .collect();
        short_hash(&all.join(","), 16)
    });
    let started = id_time(&starts_at);
    let alarm_id = format!("am:{fingerprint}:firing:{started}");
    let summary = annotations
        .get("summary")
        .or_else(|| annotations.get("description"))
        .map(|text| text.chars().take(MAX_SUMMARY_CHARS).collect::<String>());
    let mut payload = json!({ "fingerprint": fingerprint, "startsAt": starts_text });
    if !annotations.is_empty() {
        payload["annotations"] = json!(annotations);
    }
    if let Some(url) = generator_url {
        payload["generatorURL"] = json!(url);
    }
    let mut event = json!({
        "device_id": labels.get(device_label),
        "alert_key": alert_key(&labels, device_label),
        "summary": summary,
        "labels": labels,
        "payload": payload,
        "source": SOURCE,
    });
    let time_name = if firing {
        event["event_id"] = json!(alarm_id);
        event["kind"] = json!("alarm");
        event["occurred_at"] = json!(starts_text);
        event["severity"] = json!(severity(labels.get("severity")).map(Severity::as_str));
        "startsAt"
    } else {
        let (ends_text, _) = ends.unwrap_or_default();
        event["event_id"] = json!(format!("am:{fingerprint}:resolved:{started}"));
        event["kind"] = json!("recovery");
        event["occurred_at"] = json!(ends_text);
        event["resolves"] = json!(alarm_id);
        "endsAt"
    };
    let Value::Object(event) = event else {
        return Err(vec![FieldError::new(
            format!("alerts[{index}]"),
            "unusable",
        )]);
    };
    validate_event(&event, "").map_err(|errors| {
        // Two native fields can come from one alert field (a NUL in the summary is in
        // the summary and in the payload's annotations): name it once.
        let mut named: Vec<FieldError> = Vec::new();
        for e in errors {
            let field = alert_field(&e.field, &at, device_label, time_name);
            let error = FieldError::new(field, e.detail);
            if !named.contains(&error) {
                named.push(error);
            }
        }
        named
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_key_leaves_out_the_device_label() {
        let labels: BTreeMap<String, String> = [
            ("alertname", "InstanceDown"),
            ("instance", "10.0.0.1:9100"),
            ("job", "node"),
            ("severity", "page"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            alert_key(&labels, "instance"),
            r#"InstanceDown{job="node",severity="page"}"#
        );
        assert_eq!(
            alert_key(&labels, "job"),
            r#"InstanceDown{instance="10.0.0.1:9100",severity="page"}"#
        );
    }

    #[test]
    fn severities_map_when_they_name_ours() {
        let s = |t: &str| severity(Some(&t.to_string()));
        assert_eq!(s("critical"), Some(Severity::Critical));
        assert_eq!(s("Warning"), Some(Severity::Warning));
        assert_eq!(s("error"), Some(Severity::Major));
        assert_eq!(s("page"), None);
        assert_eq!(severity(None), None);
    }
}
