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
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, reason)| ConfigError::Invalid {
            path: path.display().to_string(),
            line,
            reason,
        })
    }

    /// Parse and check a configuration; an error carries its 1-based line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let file: File = toml::from_str(text).map_err(|error| {
            let line = error.span().map(|span| line_of(span.start)).unwrap_or(1);
            (line, error.message().to_string())
        })?;
        let duration = |value: &Spanned<String>| {
            humantime::parse_duration(value.get_ref()).map_err(|error| {
                (
                    line_of(value.span().start),
                    format!("`{}` is not a duration ({error})", value.get_ref()),
                )
            })
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
                        format!("receiver `{name}`: `{header}` is not a header name"),
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
                    format!(
                        "route `{name}`: no receiver named `{}`",
                        route.receiver.get_ref()
                    ),
                ));
            }
            let group_wait = match &route.group_wait {
                Some(value) => duration(value)?,
                None => Duration::from_secs(30),
            };
            let repeat_interval = match &route.repeat_interval {
                Some(value) if value.get_ref() == "never" => None,
                Some(value) => {
                    let interval = duration(value)?;
                    if interval < Duration::from_millis(100) {
                        return Err((
                            line_of(value.span().start),
                            "repeat_interval must be at least 100ms (or \"never\")".to_string(),
                        ));
                    }
                    Some(interval)
                }
                None => Some(Duration::from_secs(4 * 3600)),
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

        let delivery_file = file.delivery.unwrap_or_default();
        let get = |value: &Option<Spanned<String>>, default: Duration| match value {
            Some(value) => duration(value),
            None => Ok(default),
        };
        let delivery = Delivery {
            max_attempts: delivery_file.max_attempts.unwrap_or(10),
            initial_backoff: get(&delivery_file.initial_backoff, Duration::from_secs(1))?,
            max_backoff: get(&delivery_file.max_backoff, Duration::from_secs(300))?,
            timeout: get(&delivery_file.timeout, Duration::from_secs(10))?,
            poll_interval: get(&delivery_file.poll_interval, Duration::from_millis(500))?,
            lease: get(&delivery_file.lease, Duration::from_secs(60))?,
        };
        if delivery.max_attempts == 0 {
            return Err((1, "delivery.max_attempts must be at least 1".to_string()));
        }
        if delivery.lease <= delivery.timeout {
            return Err((
                1,
                "delivery.lease must be longer than delivery.timeout".to_string(),
            ));
        }
        Ok(NotifyConfig {
            history_cutoff: get(&file.history_cutoff, Duration::from_secs(3600))?,
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
    max_attempts: Option<u32>,
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
                "unknown variant `pager`",
            ),
            (
                GOOD.replace("receiver = \"chat\"", "receiver = \"nobody\""),
                21,
                "no receiver named `nobody`",
            ),
            (
                GOOD.replace("group_wait = \"1s\"", "group_wait = \"soon\""),
                23,
                "`soon` is not a duration",
            ),
            (
                GOOD.replace("max_attempts = 3", "max_attemps = 3"),
                5,
                "unknown field `max_attemps`",
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
                "not an absolute http(s) URL",
            ),
            (
                GOOD.replace("name = \"chat\"", "name = \"ops\""),
                15,
                "`ops` is empty or repeated",
            ),
            (
                GOOD.replace(
                    "severity = [\"critical\", \"major\"]",
                    "severity = [\"high\"]",
                ),
                22,
                "unknown variant `high`",
            ),
        ];
        for (text, line, reason) in cases {
            let (got_line, got_reason) = NotifyConfig::parse(&text).expect_err(reason);
            assert_eq!(got_line, line, "{got_reason}");
            assert!(got_reason.contains(reason), "{got_reason}");
            assert!(!got_reason.contains("s3cret"), "{got_reason}");
        }
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
