//! Other tools' formats, mapped onto ledger events: Prometheus Alertmanager's webhook
//! ([`alertmanager`]) and PagerDuty's Events API v2 ([`pagerduty`]).
//!
//! Each mapping is pure: it turns a sender's JSON into native event objects and runs
//! them through [`crate::submission::validate_event`], so every ledger rule (lengths,
//! NUL characters, time bounds) applies exactly as it does to `POST /v1/events`. Event
//! ids are derived deterministically from what identifies the sender's alert, so a
//! re-sent notification is a duplicate, never a second event.

pub mod alertmanager;
pub mod pagerduty;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::events::stored_time;
use crate::submission::{normalize_time, MAX_NAME_CHARS};

/// Hex characters of SHA-256 appended to a shortened key: 128 bits, no collisions to fear.
const KEY_HASH_HEX: usize = 32;

/// Lowercase hex SHA-256 of `text`, cut to `chars` characters.
pub fn short_hash(text: &str, chars: usize) -> String {
    let mut hex = hex::encode(Sha256::digest(text.as_bytes()));
    hex.truncate(chars);
    hex
}

/// `full` when it fits the ledger's name limit, else its first characters, `#` and a
/// hash of all of it: deterministic, still readable, and distinct for distinct inputs.
pub fn fit_name(full: &str) -> String {
    if full.chars().count() <= MAX_NAME_CHARS {
        return full.to_string();
    }
    let keep = MAX_NAME_CHARS - 1 - KEY_HASH_HEX;
    let prefix: String = full.chars().take(keep).collect();
    format!("{prefix}#{}", short_hash(full, KEY_HASH_HEX))
}

/// Quote a label name or value for an alert key: `\`, `"` and control characters are
/// escaped, so the key never holds a control character and stays unambiguous.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// An RFC 3339 time as the ledger keeps it (UTC, microseconds), or `None` when it does
/// not parse or lies outside 1970–9999.
pub fn ledger_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|at| normalize_time(at.with_timezone(&Utc)))
}

/// The time part of a derived event id: the same instant always gives the same text,
/// whatever offset or precision the sender wrote it with.
pub fn id_time(at: &DateTime<Utc>) -> String {
    stored_time::format(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_deterministically() {
        let short = "a".repeat(200);
        assert_eq!(fit_name(&short), short);
        let long = "b".repeat(300);
        let fitted = fit_name(&long);
        assert_eq!(fitted.chars().count(), 200);
        assert_eq!(fitted, fit_name(&long));
        assert!(fitted.starts_with(&"b".repeat(167)));
        assert_ne!(fitted, fit_name(&"b".repeat(301)));
    }

    #[test]
    fn escaping_removes_control_characters() {
        assert_eq!(escape("a\"b\\c\nd\u{7}"), "a\\\"b\\\\c\\nd\\u{7}");
    }
}
