//! The notification configuration file (`--notify-config`): receivers, routes and
//! delivery settings, parsed from TOML and checked as a whole at start, so a mistake is
//! reported with its line and reason instead of surfacing at the first page.
//!
//! Webhook URLs and header values are secrets (a Slack or Feishu URL is a credential on
//! its own): [`Secret`] keeps them out of `Debug` output and therefore out of every log.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config_file;
use crate::domain::{RecordedEvent, Severity};

/// A bad configuration file: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: line {line}: {reason}")]
    Invalid {
        path: String,
        line: usize,
        reason: String,
    },
}

/// A value that must never be printed: `Debug` shows `"***"`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// A generic JSON webhook (body documented in docs/notifications.md).
    Webhook,
    /// A Slack-compatible incoming webhook.
    Slack,
    /// A Feishu/Lark custom bot, sent as an interactive card.
    Feishu,
}

#[derive(Clone, Debug)]
pub struct Receiver {
    pub name: String,
    pub kind: ReceiverKind,
    pub url: Secret,
    pub headers: BTreeMap<String, Secret>,
}

/// Which alerts a route takes. Every field given must match; an empty matcher takes all.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// Glob on the device id: `*` any run of characters, `?` one character.
    pub device: Option<String>,
    /// Glob on the alert key.
    pub alert_key: Option<String>,
    /// Glob on the opening alarm's `source`.
    pub source: Option<String>,
    /// The opening alarm's severity is one of these.
    pub severity: Option<Vec<Severity>>,
    /// Each label must be present on the opening alarm with exactly this value.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub receiver: String,
    pub matcher: Matcher,
    pub group_wait: Duration,
    pub repeat_interval: Option<Duration>,
    pub send_resolved: bool,
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
    /// How often an idle dispatcher looks for due messages written by other processes.
    pub poll_interval: Duration,
    /// A server that dies mid-delivery leaves its claim; another may retry after this.
    pub lease: Duration,
}

/// The whole notification configuration.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// Episodes that opened (in the ledger's order) longer ago than this when their
    /// alarm is projected produce no messages: imports and late history never page.
    pub history_cutoff: Duration,
    pub delivery: Delivery,
    pub receivers: Vec<Receiver>,
    /// In order; the default route is last.
    pub routes: Vec<Route>,
}

impl NotifyConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let path_text = || path.display().to_string();
        let text = config_file::read(path).map_err(|error| match error.line() {
            Some(line) => ConfigError::Invalid {
                path: path_text(),
                line,
                reason: error.to_string(),
            },
            None => ConfigError::Unreadable {
                path: path_text(),
                reason: error.to_string(),
            },
        })?;
        Self::parse(&text).map_err(|(line, reason)| ConfigError::Invalid {
            path: path_text(),
            line,
            reason,
        })
    }

    /// Parse and check a configuration; an error carries its 1-based line. The reason
    /// never repeats a URL or header value: serde's quotes are redacted, and our own
    /// messages name only receivers, routes, variables and durations.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let line_of = |offset: usize| config_file::line_at(text.as_bytes(), offset);
        let file: File = toml::from_str(text).map_err(|error| {
            let line = error.span().map(|span| line_of(span.start)).unwrap_or(1);
            (line, config_file::reason(&error))
        })?;
        // Every duration is bounded at load: an unbounded one overflows the clock
        // arithmetic at send time (a panic, or a wrap to zero and a reminder storm).
        let duration = |field: &str, value: &Spanned<String>, bounds: &Bounds| {
            let line = line_of(value.span().start);
            // The value is not repeated: it may be a secret pasted into the wrong line.
            let parsed = humantime::parse_duration(value.get_ref()).map_err(|_| {
                (
                    line,
                    format!("{field} is not a duration (write it like 250ms, 30s, 5m, 4h or 1d)"),
                )
            })?;
            bounds.check(field, parsed).map_err(|reason| (line, reason))
        };
        let optional = |field: &str, value: &Option<Spanned<String>>, bounds: &Bounds| match value {
            Some(value) => duration(field, value, bounds),
            None => Ok(bounds.default),
        };
        // The line of the first of these settings the file gives, for a refusal about
        // how two of them relate.
        let line_of_first = |values: &[&Option<Spanned<String>>]| {
            values
                .iter()
                .find_map(|value| value.as_ref().map(|v| line_of(v.span().start)))
                .unwrap_or(1)
        };

        let mut receivers = Vec::new();
        let mut names = HashSet::new();
        for receiver in &file.receivers {
            let line = line_of(receiver.name.span().start);
            let name = receiver.name.get_ref().clone();
            if name.is_empty() || !names.insert(name.clone()) {
                return Err((line, format!("receiver name `{name}` is empty or repeated")));
            }
            let url = match (&receiver.url, &receiver.url_env) {
                (Some(url), None) => url.clone(),
                // Only a variable name is repeated in a refusal; anything else (a URL
                // pasted here) is refused without being shown.
                (None, Some(var)) if !is_variable_name(var) => {
                    return Err((
                        line,
                        format!("receiver `{name}`: url_env is not an environment variable name"),
                    ))
                }
                (None, Some(var)) => Secret(std::env::var(var).map_err(|_| {
                    (
                        line,
                        format!("receiver `{name}`: environment variable {var} is not set"),
                    )
                })?),
                _ => {
                    return Err((
                        line,
                        format!("receiver `{name}` needs exactly one of `url` or `url_env`"),
                    ))
                }
            };
            let parsed = reqwest::Url::parse(url.expose()).map_err(|_| {
                (
                    line,
                    format!("receiver `{name}`: url is not an absolute http(s) URL"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err((
                    line,
                    format!("receiver `{name}`: url is not an absolute http(s) URL"),
                ));
            }
            for header in receiver.headers.keys() {
                if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err((
                        line,
                        format!(
                            "receiver `{name}`: a key of `headers` is not a valid HTTP header name"
                        ),
                    ));
                }
            }
            for value in receiver.headers.values() {
                if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
                    return Err((
                        line,
                        format!("receiver `{name}`: a header value is not valid in HTTP"),
                    ));
                }
            }
            receivers.push(Receiver {
                name,
                kind: receiver.kind,
                url,
                headers: receiver.headers.clone(),
            });
        }

        let mut routes = Vec::new();
        let default = file
            .default_route
            .as_ref()
            .ok_or((1, "a [default_route] is required".to_string()))?;
        let all_routes = file
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.name.clone().unwrap_or_else(|| format!("route-{}", i + 1)),
                    r,
                )
            })
            .chain(std::iter::once(("default".to_string(), default)));
        let mut route_names = HashSet::new();
        for (name, route) in all_routes {
            let line = line_of(route.receiver.span().start);
            if !route_names.insert(name.clone()) {
                return Err((line, format!("route name `{name}` is repeated")));
            }
            if !names.contains(route.receiver.get_ref()) {
                return Err((
                    line,
                    // Not repeated: a receiver's URL pasted here is a plausible mistake.
                    format!(
                        "route `{name}`: its receiver is not the name of a [[receivers]] entry"
                    ),
                ));
            }
            let group_wait = optional("group_wait", &route.group_wait, &GROUP_WAIT)?;
            let repeat_interval = match &route.repeat_interval {
                Some(value) if value.get_ref() == "never" => None,
                value => Some(optional("repeat_interval", value, &REPEAT_INTERVAL)?),
            };
            routes.push(Route {
                name,
                receiver: route.receiver.get_ref().clone(),
                matcher: route.matcher.clone().unwrap_or_default(),
                group_wait,
                repeat_interval,
                send_resolved: route.send_resolved.unwrap_or(true),
            });
        }

        let d = file.delivery.unwrap_or_default();
        let max_attempts = match &d.max_attempts {
            Some(value) if *value.get_ref() == 0 => {
                return Err((
                    line_of(value.span().start),
                    "max_attempts must be at least 1".to_string(),
                ))
            }
            Some(value) => *value.get_ref(),
            None => 10,
        };
        let delivery = Delivery {
            max_attempts,
            initial_backoff: optional("initial_backoff", &d.initial_backoff, &INITIAL_BACKOFF)?,
            max_backoff: optional("max_backoff", &d.max_backoff, &MAX_BACKOFF)?,
            timeout: optional("timeout", &d.timeout, &TIMEOUT)?,
            poll_interval: optional("poll_interval", &d.poll_interval, &POLL_INTERVAL)?,
            lease: optional("lease", &d.lease, &LEASE)?,
        };
        if delivery.initial_backoff > delivery.max_backoff {
            return Err((
                line_of_first(&[&d.initial_backoff, &d.max_backoff]),
                "initial_backoff must not be longer than max_backoff".to_string(),
            ));
        }
        if delivery.lease <= delivery.timeout {
            return Err((
                line_of_first(&[&d.lease, &d.timeout]),
                "lease must be longer than timeout".to_string(),
            ));
        }
        Ok(NotifyConfig {
            history_cutoff: optional("history_cutoff", &file.history_cutoff, &HISTORY_CUTOFF)?,
            delivery,
            receivers,
            routes,
        })
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The first route whose matcher takes this alert; the default route otherwise.
    pub fn route_for(&self, device_id: &str, opening: &RecordedEvent) -> &Route {
        self.routes
            .iter()
            .find(|route| route.matcher.matches(device_id, opening))
            .unwrap_or_else(|| {
                // `parse` always appends the default route, which matches everything.
                &self.routes[self.routes.len() - 1]
            })
    }
}

impl Matcher {
    pub fn matches(&self, device_id: &str, opening: &RecordedEvent) -> bool {
        let glob_ok = |pattern: &Option<String>, value: Option<&str>| match pattern {
            None => true,
            Some(pattern) => value.is_some_and(|v| glob(pattern, v)),
        };
        glob_ok(&self.device, Some(device_id))
            && glob_ok(&self.alert_key, Some(&opening.alert_key))
            && glob_ok(&self.source, opening.source.as_deref())
            && self
                .severity
                .as_ref()
                .is_none_or(|allowed| opening.severity.is_some_and(|s| allowed.contains(&s)))
            && self
                .labels
                .iter()
                .all(|(key, value)| opening.labels.get(key) == Some(value))
    }
}

/// What `url_env` may hold: letters, digits and `_`, not starting with a digit.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `*` matches any run of characters (also none), `?` exactly one; nothing else is special.
pub fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

// ---- bounds ------------------------------------------------------------------------

/// The range a duration setting accepts, and its default. Documented in
/// docs/notifications.md ("Durations"); keep the two in step.
struct Bounds {
    min: Duration,
    max: Duration,
    default: Duration,
}

const fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

const HISTORY_CUTOFF: Bounds = Bounds {
    min: secs(1),
    max: secs(365 * DAY),
    default: secs(HOUR),
};
const GROUP_WAIT: Bounds = Bounds {
    min: Duration::ZERO,
    max: secs(DAY),
    default: secs(30),
};
/// At least 100 ms so a typo cannot make a reminder storm; "never" turns reminders off.
const REPEAT_INTERVAL: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: secs(365 * DAY),
    default: secs(4 * HOUR),
};
const INITIAL_BACKOFF: Bounds = Bounds {
    min: Duration::from_millis(10),
    max: secs(DAY),
    default: secs(1),
};
const MAX_BACKOFF: Bounds = Bounds {
    min: Duration::from_millis(10),
    max: secs(DAY),
    default: secs(300),
};
/// Zero would fail every attempt at once; more than minutes holds a claim for nothing.
const TIMEOUT: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: secs(300),
    default: secs(10),
};
/// Zero is a busy loop.
const POLL_INTERVAL: Bounds = Bounds {
    min: Duration::from_millis(10),
    max: secs(HOUR),
    default: Duration::from_millis(500),
};
/// A crashed server's claims are retried after the lease; more than an hour delays
/// those messages too long, and it must outlast `timeout` (checked separately).
const LEASE: Bounds = Bounds {
    min: secs(1),
    max: secs(HOUR),
    default: secs(60),
};

impl Bounds {
    fn check(&self, field: &str, value: Duration) -> Result<Duration, String> {
        if value < self.min || value > self.max {
            return Err(format!(
                "{field} must be between {} and {}",
                short(self.min),
                short(self.max)
            ));
        }
        Ok(value)
    }
}

/// A bound as it would be written in the file: `0s`, `100ms`, `5m`, `24h`, `365d`.
fn short(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() != 0 {
        format!("{}ms", duration.as_millis())
    } else if seconds != 0 && seconds.is_multiple_of(DAY) && seconds > DAY {
        format!("{}d", seconds / DAY)
    } else if seconds != 0 && seconds.is_multiple_of(HOUR) {
        format!("{}h", seconds / HOUR)
    } else if seconds != 0 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

// ---- the file as written ---------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    history_cutoff: Option<Spanned<String>>,
    delivery: Option<DeliveryFile>,
    #[serde(default)]
    receivers: Vec<ReceiverFile>,
    #[serde(default)]
    routes: Vec<RouteFile>,
    default_route: Option<RouteFile>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryFile {
    max_attempts: Option<Spanned<u32>>,
    initial_backoff: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
    lease: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverFile {
    name: Spanned<String>,
    kind: ReceiverKind,
    url: Option<Secret>,
    url_env: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: Option<String>,
    receiver: Spanned<String>,
    #[serde(rename = "match")]
    matcher: Option<Matcher>,
    group_wait: Option<Spanned<String>>,
    repeat_interval: Option<Spanned<String>>,
    send_resolved: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
history_cutoff = "2h"

[delivery]
max_attempts = 3
initial_backoff = "100ms"

[[receivers]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:9/hook?token=s3cret"
headers = { Authorization = "Bearer s3cret" }

[[receivers]]
name = "chat"
kind = "feishu"
url = "https://open.feishu.cn/open-apis/bot/v2/hook/s3cret"

[[routes]]
name = "rooms"
receiver = "chat"
match = { device = "room-*", severity = ["critical", "major"], labels = { team = "facilities" } }
group_wait = "1s"
repeat_interval = "never"

[default_route]
receiver = "ops"
send_resolved = false
"#;

    fn opening(severity: Option<Severity>, team: Option<&str>) -> RecordedEvent {
        RecordedEvent {
            event_id: "a".into(),
            kind: crate::domain::Kind::Alarm,
            alert_key: "offline".into(),
            occurred_at: None,
            recorded_at: chrono::Utc::now(),
            severity,
            summary: None,
            labels: team
                .map(|t| BTreeMap::from([("team".to_string(), t.to_string())]))
                .unwrap_or_default(),
            payload: None,
            source: None,
            resolves: None,
        }
    }

    #[test]
    fn a_good_file_parses_with_its_defaults() {
        let config = NotifyConfig::parse(GOOD).expect("valid");
        assert_eq!(config.history_cutoff, Duration::from_secs(7200));
        assert_eq!(config.delivery.max_attempts, 3);
        assert_eq!(config.delivery.initial_backoff, Duration::from_millis(100));
        assert_eq!(config.delivery.max_backoff, Duration::from_secs(300));
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[0].group_wait, Duration::from_secs(1));
        assert_eq!(config.routes[0].repeat_interval, None);
        assert!(config.routes[0].send_resolved);
        assert_eq!(config.routes[1].name, "default");
        assert_eq!(config.routes[1].group_wait, Duration::from_secs(30));
        assert_eq!(
            config.routes[1].repeat_interval,
            Some(Duration::from_secs(14400))
        );
        assert!(!config.routes[1].send_resolved);
    }

    #[test]
    fn first_matching_route_wins_and_the_default_takes_the_rest() {
        let config = NotifyConfig::parse(GOOD).expect("valid");
        let matching = opening(Some(Severity::Major), Some("facilities"));
        assert_eq!(config.route_for("room-3f", &matching).name, "rooms");
        assert_eq!(config.route_for("door-3f", &matching).name, "default");
        let minor = opening(Some(Severity::Minor), Some("facilities"));
        assert_eq!(config.route_for("room-3f", &minor).name, "default");
        let other_team = opening(Some(Severity::Major), Some("it"));
        assert_eq!(config.route_for("room-3f", &other_team).name, "default");
        let no_severity = opening(None, Some("facilities"));
        assert_eq!(config.route_for("room-3f", &no_severity).name, "default");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = NotifyConfig::parse(GOOD).expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("***"));
    }

    #[test]
    fn bad_files_are_refused_with_line_and_reason() {
        let cases = [
            (
                GOOD.replace("kind = \"feishu\"", "kind = \"pager\""),
                16,
                "unknown variant, expected one of `webhook`, `slack`, `feishu`",
            ),
            (
                GOOD.replace("receiver = \"chat\"", "receiver = \"nobody\""),
                21,
                "route `rooms`: its receiver is not the name of a [[receivers]] entry",
            ),
            (
                GOOD.replace("group_wait = \"1s\"", "group_wait = \"soon\""),
                23,
                "group_wait is not a duration (write it like 250ms, 30s, 5m, 4h or 1d)",
            ),
            (
                GOOD.replace("max_attempts = 3", "max_attemps = 3"),
                5,
                "unknown field `max_attemps`, expected one of `max_attempts`, `initial_backoff`, \
                 `max_backoff`, `timeout`, `poll_interval`, `lease`",
            ),
            (
                GOOD.replace(
                    "[default_route]\nreceiver = \"ops\"\nsend_resolved = false\n",
                    "",
                ),
                1,
                "a [default_route] is required",
            ),
            (
                GOOD.replace(
                    "url = \"http://127.0.0.1:9/hook?token=s3cret\"",
                    "url = \"ftp://x\"",
                ),
                9,
                "receiver `ops`: url is not an absolute http(s) URL",
            ),
            (
                GOOD.replace("name = \"chat\"", "name = \"ops\""),
                15,
                "receiver name `ops` is empty or repeated",
            ),
            (
                GOOD.replace(
                    "severity = [\"critical\", \"major\"]",
                    "severity = [\"high\"]",
                ),
                22,
                "unknown variant, expected one of `critical`, `major`, `minor`, `warning`, `info`",
            ),
        ];
        for (text, line, reason) in cases {
            assert_refused(&text, line, reason);
        }
    }

    /// `text` is refused on `line` for exactly `reason`, which repeats no secret.
    fn assert_refused(text: &str, line: usize, reason: &str) {
        let (got_line, got_reason) = NotifyConfig::parse(text).expect_err(reason);
        assert_eq!((got_line, got_reason.as_str()), (line, reason));
        for secret in ["s3cret", "SECRET"] {
            assert!(!got_reason.contains(secret), "{got_reason}");
        }
    }

    /// A URL, a token or a header value written where another type belongs is refused
    /// without being repeated (serde quotes the values it rejects).
    #[test]
    fn refusals_never_repeat_a_value_from_the_file() {
        let headers = "headers = { Authorization = \"Bearer s3cret\" }";
        let url = "url = \"http://127.0.0.1:9/hook?token=s3cret\"";
        let cases = [
            (
                GOOD.replace(headers, "headers = \"Bearer HDRSECRET\""),
                12,
                "invalid type: a string, expected a map",
            ),
            (
                GOOD.replace(
                    headers,
                    "headers = { Authorization = [\"Bearer HDRSECRET\"] }",
                ),
                12,
                "invalid type: sequence, expected a string",
            ),
            (
                GOOD.replace(
                    "send_resolved = false",
                    "send_resolved = \"https://hooks.example/URLSECRET\"",
                ),
                28,
                "invalid type: a string, expected a boolean",
            ),
            (
                GOOD.replace(
                    "kind = \"webhook\"",
                    "kind = \"https://hooks.example/URLSECRET\"",
                ),
                10,
                "unknown variant, expected one of `webhook`, `slack`, `feishu`",
            ),
            (
                GOOD.replace(url, "url_env = \"https://hooks.example/?token=TOKSECRET\""),
                9,
                "receiver `ops`: url_env is not an environment variable name",
            ),
            (
                GOOD.replace("max_attempts = 3", "max_attempts = \"TOKSECRET\""),
                5,
                "invalid type: a string, expected u32",
            ),
            (
                GOOD.replace("group_wait = \"1s\"", "group_wait = \"5TOKSECRET\""),
                23,
                "group_wait is not a duration (write it like 250ms, 30s, 5m, 4h or 1d)",
            ),
            (
                GOOD.replace(
                    "receiver = \"chat\"",
                    "receiver = \"https://hooks.example/URLSECRET\"",
                ),
                21,
                "route `rooms`: its receiver is not the name of a [[receivers]] entry",
            ),
        ];
        for (text, line, reason) in cases {
            assert_refused(&text, line, reason);
        }
    }

    /// Every duration is bounded, so none overflows the clock arithmetic at send time.
    #[test]
    fn durations_out_of_bounds_are_refused_with_line_and_bound() {
        let delivery = "[delivery]\nmax_attempts = 3\ninitial_backoff = \"100ms\"\n";
        let with_delivery = |lines: &str| GOOD.replace(delivery, &format!("[delivery]\n{lines}\n"));
        let cases = [
            (
                GOOD.replace("history_cutoff = \"2h\"", "history_cutoff = \"1000000y\""),
                2,
                "history_cutoff must be between 1s and 365d",
            ),
            (
                GOOD.replace("group_wait = \"1s\"", "group_wait = \"1000000y\""),
                23,
                "group_wait must be between 0s and 24h",
            ),
            (
                GOOD.replace(
                    "repeat_interval = \"never\"",
                    "repeat_interval = \"300000000y\"",
                ),
                24,
                "repeat_interval must be between 100ms and 365d",
            ),
            (
                GOOD.replace(
                    "repeat_interval = \"never\"",
                    "repeat_interval = \"1000000y\"",
                ),
                24,
                "repeat_interval must be between 100ms and 365d",
            ),
            (
                GOOD.replace("repeat_interval = \"never\"", "repeat_interval = \"0s\""),
                24,
                "repeat_interval must be between 100ms and 365d",
            ),
            (
                with_delivery("lease = \"1000000y\""),
                5,
                "lease must be between 1s and 1h",
            ),
            (
                with_delivery("poll_interval = \"0s\""),
                5,
                "poll_interval must be between 10ms and 1h",
            ),
            (
                with_delivery("timeout = \"0s\""),
                5,
                "timeout must be between 100ms and 5m",
            ),
            (
                with_delivery("max_backoff = \"2d\""),
                5,
                "max_backoff must be between 10ms and 24h",
            ),
            (
                with_delivery("initial_backoff = \"10m\"\nmax_backoff = \"1s\""),
                5,
                "initial_backoff must not be longer than max_backoff",
            ),
            (
                with_delivery("max_backoff = \"500ms\""),
                5,
                "initial_backoff must not be longer than max_backoff",
            ),
            (
                with_delivery("timeout = \"2m\""),
                5,
                "lease must be longer than timeout",
            ),
            (
                with_delivery("max_attempts = 0"),
                5,
                "max_attempts must be at least 1",
            ),
        ];
        for (text, line, reason) in cases {
            assert_refused(&text, line, reason);
        }
        // The bounds themselves are accepted.
        let edges = with_delivery(
            "initial_backoff = \"24h\"\nmax_backoff = \"24h\"\ntimeout = \"5m\"\n\
             poll_interval = \"10ms\"\nlease = \"1h\"",
        )
        .replace("history_cutoff = \"2h\"", "history_cutoff = \"365d\"")
        .replace("group_wait = \"1s\"", "group_wait = \"24h\"")
        .replace("repeat_interval = \"never\"", "repeat_interval = \"100ms\"");
        let config = NotifyConfig::parse(&edges).expect("bounds are inclusive");
        assert_eq!(config.history_cutoff, Duration::from_secs(365 * 86400));
        assert_eq!(config.routes[0].group_wait, Duration::from_secs(86400));
        assert_eq!(
            config.routes[0].repeat_interval,
            Some(Duration::from_millis(100))
        );
        assert_eq!(config.delivery.initial_backoff, Duration::from_secs(86400));
        assert_eq!(config.delivery.timeout, Duration::from_secs(300));
        assert_eq!(config.delivery.poll_interval, Duration::from_millis(10));
        assert_eq!(config.delivery.lease, Duration::from_secs(3600));
    }

    #[test]
    fn globs_match_whole_strings() {
        assert!(glob("room-*", "room-3f-east"));
        assert!(glob("*-east", "room-3f-east"));
        assert!(glob("room-?f-*", "room-3f-east"));
        assert!(glob("*", ""));
        assert!(!glob("room-*", "lobby-room-1"));
        assert!(!glob("room-?f", "room-13f"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }
}
