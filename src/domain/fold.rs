//! The ledger rules (BRIEF §3) as a pure function from the *set* of an alert's recorded
//! events to its state and episodes.
//!
//! [`fold`] is the definition: resolve effective times, sort into the total order, and
//! [`AlertState::step`] through it. Projections never re-implement these rules; they
//! either call [`fold`] or, when a new event sorts after everything already folded,
//! resume a stored [`AlertState`] with [`AlertState::extend`] — the same `step`, so the
//! two paths cannot disagree (the property tests below check exactly that).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::events::{Kind, RecordedEvent, Severity};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldConfig {
    /// How far past its `recorded_at` an event's `occurred_at` may lie before the clock
    /// of its sender is distrusted (BRIEF rule 2).
    pub max_future_skew: Duration,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            max_future_skew: Duration::minutes(5),
        }
    }
}

/// `eff(e) = min(occurred_at, recorded_at + max_future_skew)`, and whether the bound cut in.
pub fn effective_time(event: &RecordedEvent, config: &FoldConfig) -> (DateTime<Utc>, bool) {
    let occurred = event.occurred_at.unwrap_or(event.recorded_at);
    let bound = event.recorded_at + config.max_future_skew;
    if occurred > bound {
        (bound, true)
    } else {
        (occurred, false)
    }
}

/// The position of an event in its alert's total order (BRIEF rule 3). Field order is
/// the comparison order: effective time, then alarm before recovery, then event id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderKey {
    pub effective_at: DateTime<Utc>,
    pub kind: Kind,
    pub event_id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One stretch of firing: opened by an alarm while not firing, closed by a recovery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// 1-based, in the alert's total order.
    pub number: i64,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub alarm_count: i64,
    pub severity: Option<Severity>,
    pub summary: Option<String>,
    pub opened_by: String,
    pub closed_by: Option<String>,
    /// The closing recovery was recorded before the opening alarm: the race we exist for.
    pub reconciled: bool,
    /// When the opening alarm was recorded; needed to decide `reconciled` on close.
    pub opening_recorded_at: DateTime<Utc>,
    /// The first acknowledgement that fell inside this episode while it was firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledged>,
}

/// Who acknowledged an episode, when, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub at: DateTime<Utc>,
    pub by: Option<String>,
    pub reason: Option<String>,
    pub event_id: String,
}

/// Everything needed to answer "is this alert over?" and to resume folding.
/// Its size does not depend on how many events the alert has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub status: Status,
    pub severity: Option<Severity>,
    pub summary: Option<String>,
    /// Start of the firing episode, or end of the last one when resolved.
    pub since: Option<DateTime<Utc>>,
    pub last_alarm_at: Option<DateTime<Utc>>,
    pub last_recovery_at: Option<DateTime<Utc>>,
    pub episode_count: i64,
    pub alarm_count: i64,
    pub recovery_count: i64,
    pub stray_recovery_count: i64,
    /// The latest episode, open or closed.
    pub current_episode: Option<Episode>,
    /// The greatest order key folded so far.
    pub last_key: Option<OrderKey>,
}

impl Default for AlertState {
    fn default() -> Self {
        Self {
            status: Status::Resolved,
            severity: None,
            summary: None,
            since: None,
            last_alarm_at: None,
            last_recovery_at: None,
            episode_count: 0,
            alarm_count: 0,
            recovery_count: 0,
            stray_recovery_count: 0,
            current_episode: None,
            last_key: None,
        }
    }
}

/// What one step did to the episodes, so a projection can write just that row.
#[derive(Clone, Debug, PartialEq)]
pub enum EpisodeChange {
    Opened,
    Joined,
    Closed,
    StrayRecovery,
    Acknowledged,
    /// An acknowledgement with no firing, unacknowledged episode to apply to.
    StrayAcknowledgement,
}

/// An event together with its resolved effective time: the unit `step` consumes.
#[derive(Clone, Debug)]
pub struct OrderedEvent<'a> {
    pub key: OrderKey,
    pub event: &'a RecordedEvent,
}

/// What a projection knows about an event's links when it tries to extend a stored state.
#[derive(Clone, Debug, Default)]
pub struct Links<'a> {
    /// For a recovery with `resolves`: the named event, if the stream holds it.
    pub resolved_alarm: Option<&'a RecordedEvent>,
    /// For an alarm: whether a recovery already recorded names it in `resolves`.
    pub named_by_a_recovery: bool,
}

/// The full result of folding an alert's event set.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertFold {
    pub state: AlertState,
    pub episodes: Vec<Episode>,
}

impl Episode {
    /// Milliseconds from opening to closing; `None` while the episode is open.
    pub fn duration_ms(&self) -> Option<i64> {
        self.closed_at
            .map(|closed| (closed - self.opened_at).num_milliseconds())
    }
}

impl AlertState {
    /// Apply the next event in the total order (BRIEF rules 4 and 5).
    pub fn step(&mut self, next: OrderedEvent<'_>) -> EpisodeChange {
        let event = next.event;
        let at = next.key.effective_at;
        let change = match event.kind {
            Kind::Alarm => {
                self.alarm_count += 1;
                self.last_alarm_at = Some(at);
                match (&self.status, self.current_episode.as_mut()) {
                    (Status::Firing, Some(episode)) => {
                        episode.alarm_count += 1;
                        if event.severity.is_some() {
                            episode.severity = event.severity;
                        }
                        if event.summary.is_some() {
                            episode.summary.clone_from(&event.summary);
                        }
                        EpisodeChange::Joined
                    }
                    _ => {
                        self.episode_count += 1;
                        self.status = Status::Firing;
                        self.since = Some(at);
                        self.current_episode = Some(Episode {
                            number: self.episode_count,
                            opened_at: at,
                            closed_at: None,
                            alarm_count: 1,
                            severity: event.severity,
                            summary: event.summary.clone(),
                            opened_by: event.event_id.clone(),
                            closed_by: None,
                            reconciled: false,
                            opening_recorded_at: event.recorded_at,
                            acknowledged: None,
                        });
                        EpisodeChange::Opened
                    }
                }
            }
            Kind::Recovery => {
                self.recovery_count += 1;
                self.last_recovery_at = Some(at);
                match (&self.status, self.current_episode.as_mut()) {
                    (Status::Firing, Some(episode)) => {
                        episode.closed_at = Some(at);
                        episode.closed_by = Some(event.event_id.clone());
                        episode.reconciled = event.recorded_at < episode.opening_recorded_at;
                        self.status = Status::Resolved;
                        self.since = Some(at);
                        EpisodeChange::Closed
                    }
                    _ => {
                        self.stray_recovery_count += 1;
                        EpisodeChange::StrayRecovery
                    }
                }
            }
            Kind::Acknowledgement => match (&self.status, self.current_episode.as_mut()) {
                (Status::Firing, Some(episode)) if episode.acknowledged.is_none() => {
                    episode.acknowledged = Some(Acknowledged {
                        at,
                        by: event.source.clone(),
                        reason: event.summary.clone(),
                        event_id: event.event_id.clone(),
                    });
                    EpisodeChange::Acknowledged
                }
                _ => EpisodeChange::StrayAcknowledgement,
            },
        };
        if let Some(episode) = &self.current_episode {
            self.severity = episode.severity;
            self.summary.clone_from(&episode.summary);
        }
        self.last_key = Some(next.key);
        change
    }

    /// Fold one more event into a stored state without re-reading the alert's other
    /// events. Returns `None` when that would not match [`fold`] — the event sorts
    /// before something already folded, or its effective time depends on (or changes)
    /// another event's — and the caller must fold the whole set instead.
    pub fn extend(
        &self,
        event: &RecordedEvent,
        links: &Links<'_>,
        config: &FoldConfig,
    ) -> Option<(AlertState, EpisodeChange)> {
        if event.kind == Kind::Alarm && links.named_by_a_recovery {
            return None;
        }
        let (mut effective_at, _) = effective_time(event, config);
        if event.kind == Kind::Recovery && event.resolves.is_some() {
            if let Some(alarm) = links.resolved_alarm {
                if alarm.kind == Kind::Alarm && alarm.alert_key == event.alert_key {
                    effective_at = effective_at.max(effective_time(alarm, config).0);
                }
            }
        }
        let key = OrderKey {
            effective_at,
            kind: event.kind,
            event_id: event.event_id.clone(),
        };
        if self.last_key.as_ref().is_some_and(|last| key <= *last) {
            return None;
        }
        let mut next = self.clone();
        let change = next.step(OrderedEvent { key, event });
        Some((next, change))
    }
}

/// Put a set of one alert's events into the ledger's total order.
/// Repeated event ids count once: the set, not the submissions, defines the alert.
pub fn order<'a>(events: &'a [RecordedEvent], config: &FoldConfig) -> Vec<OrderedEvent<'a>> {
    let mut unique: BTreeMap<&str, &RecordedEvent> = BTreeMap::new();
    for event in events {
        unique.entry(event.event_id.as_str()).or_insert(event);
    }
    let alarm_times: HashMap<&str, DateTime<Utc>> = unique
        .values()
        .filter(|e| e.kind == Kind::Alarm)
        .map(|e| (e.event_id.as_str(), effective_time(e, config).0))
        .collect();
    let mut ordered: Vec<OrderedEvent<'a>> = unique
        .into_values()
        .map(|event| {
            let (mut effective_at, _) = effective_time(event, config);
            if event.kind == Kind::Recovery {
                if let Some(alarm_at) = event.resolves.as_deref().and_then(|id| alarm_times.get(id))
                {
                    effective_at = effective_at.max(*alarm_at);
                }
            }
            OrderedEvent {
                key: OrderKey {
                    effective_at,
                    kind: event.kind,
                    event_id: event.event_id.clone(),
                },
                event,
            }
        })
        .collect();
    ordered.sort_by(|a, b| a.key.cmp(&b.key));
    ordered
}

/// The ledger rules: state and episodes of one alert from the set of its events.
pub fn fold(events: &[RecordedEvent], config: &FoldConfig) -> AlertFold {
    let mut state = AlertState::default();
    let mut episodes: Vec<Episode> = Vec::new();
    for next in order(events, config) {
        match state.step(next) {
            EpisodeChange::Opened => episodes.extend(state.current_episode.clone()),
            EpisodeChange::Joined | EpisodeChange::Closed | EpisodeChange::Acknowledged => {
                if let (Some(last), Some(current)) = (episodes.last_mut(), &state.current_episode) {
                    *last = current.clone();
                }
            }
            EpisodeChange::StrayRecovery | EpisodeChange::StrayAcknowledgement => {}
        }
    }
    AlertFold { state, episodes }
}

#[cfg(test)]
mod tests;
