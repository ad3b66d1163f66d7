//! The BRIEF's reference cases with their exact outcomes, and property tests that the
//! fold depends only on the event set.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use super::*;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-12-03T{text}Z"))
        .expect("test timestamp")
        .with_timezone(&Utc)
}

fn event(id: &str, kind: Kind, occurred: &str, recorded: &str) -> RecordedEvent {
    RecordedEvent {
        event_id: id.to_string(),
        kind,
        alert_key: "offline".to_string(),
        occurred_at: Some(t(occurred)),
        recorded_at: t(recorded),
        severity: None,
        summary: None,
        labels: BTreeMap::new(),
        payload: None,
        source: None,
        resolves: None,
    }
}

fn alarm(id: &str, occurred: &str, recorded: &str) -> RecordedEvent {
    event(id, Kind::Alarm, occurred, recorded)
}

fn recovery(id: &str, occurred: &str, recorded: &str) -> RecordedEvent {
    event(id, Kind::Recovery, occurred, recorded)
}

fn run(events: &[RecordedEvent]) -> AlertFold {
    fold(events, &FoldConfig::default())
}

#[test]
fn case_1_the_242_ms_race_resolves_in_either_arrival_order() {
    let in_order = [
        alarm("a", "21:00:00.000", "21:05:00.000"),
        recovery("r", "21:05:00.200", "21:05:00.242"),
    ];
    let reversed = [
        recovery("r", "21:05:00.200", "21:05:00.000"),
        alarm("a", "21:00:00.000", "21:05:00.242"),
    ];
    for events in [&in_order[..], &reversed[..]] {
        let result = run(events);
        assert_eq!(result.state.status, Status::Resolved);
        assert_eq!(result.episodes.len(), 1);
        assert_eq!(result.episodes[0].opened_at, t("21:00:00.000"));
        assert_eq!(result.episodes[0].closed_at, Some(t("21:05:00.200")));
        assert_eq!(result.state.since, Some(t("21:05:00.200")));
    }
    assert!(!run(&in_order).episodes[0].reconciled);
    assert!(run(&reversed).episodes[0].reconciled);
}

#[test]
fn case_2_a_recovery_recorded_first_reconciles_its_episode() {
    let result = run(&[
        recovery("r", "10:00:00.242", "10:00:00.300"),
        alarm("a", "10:00:00.000", "10:00:00.400"),
    ]);
    assert_eq!(result.state.status, Status::Resolved);
    assert_eq!(result.episodes.len(), 1);
    assert!(result.episodes[0].reconciled);
    assert_eq!(result.state.stray_recovery_count, 0);
}

#[test]
fn case_3_a_late_resent_alarm_joins_the_closed_episode() {
    let result = run(&[
        alarm("a1", "10:00:00", "10:00:01"),
        recovery("r", "10:05:00", "10:05:01"),
        alarm("a2", "10:00:00", "10:06:00"),
    ]);
    assert_eq!(result.state.status, Status::Resolved);
    assert_eq!(result.episodes.len(), 1);
    assert_eq!(result.episodes[0].alarm_count, 2);
    assert_eq!(result.episodes[0].closed_at, Some(t("10:05:00")));
}

#[test]
fn case_4_an_alarm_after_the_recovery_fires_a_second_episode() {
    let result = run(&[
        alarm("a1", "10:00:00", "10:00:01"),
        recovery("r", "10:05:00", "10:05:01"),
        alarm("a2", "10:07:00", "10:07:01"),
    ]);
    assert_eq!(result.state.status, Status::Firing);
    assert_eq!(result.state.since, Some(t("10:07:00")));
    assert_eq!(result.episodes.len(), 2);
    assert_eq!(result.state.episode_count, 2);
    assert_eq!(result.episodes[1].closed_at, None);
}

#[test]
fn case_5_a_tie_resolves_into_a_zero_length_episode() {
    let result = run(&[
        alarm("z", "10:00:00", "10:00:01"),
        recovery("a", "10:00:00", "10:00:02"),
    ]);
    assert_eq!(result.state.status, Status::Resolved);
    assert_eq!(result.episodes.len(), 1);
    assert_eq!(
        result.episodes[0].opened_at,
        result.episodes[0].closed_at.unwrap()
    );
}

#[test]
fn case_8_an_alarm_from_tomorrow_is_cut_to_five_minutes_past_recording() {
    let mut future = alarm("a", "10:00:00", "10:00:00");
    future.occurred_at = Some(t("10:00:00") + Duration::days(1));
    let (effective_at, clock_skew) = effective_time(&future, &FoldConfig::default());
    assert!(clock_skew);
    assert_eq!(effective_at, t("10:05:00"));
    let result = run(&[future]);
    assert_eq!(result.state.status, Status::Firing);
    assert_eq!(result.state.since, Some(t("10:05:00")));
}

#[test]
fn an_event_within_the_skew_bound_keeps_its_own_time() {
    let near = alarm("a", "10:04:59", "10:00:00");
    assert_eq!(
        effective_time(&near, &FoldConfig::default()),
        (t("10:04:59"), false)
    );
}

#[test]
fn a_missing_occurred_at_means_recorded_at() {
    let mut event = alarm("a", "10:00:00", "10:00:07");
    event.occurred_at = None;
    assert_eq!(
        effective_time(&event, &FoldConfig::default()),
        (t("10:00:07"), false)
    );
}

#[test]
fn case_9_a_linked_recovery_never_precedes_its_alarm() {
    let mut linked = recovery("r", "14:26:39", "14:27:01");
    linked.resolves = Some("P".to_string());
    let result = run(&[alarm("P", "14:27:00", "14:27:00"), linked]);
    assert_eq!(result.state.status, Status::Resolved);
    assert_eq!(result.episodes.len(), 1);
    assert_eq!(result.episodes[0].opened_at, t("14:27:00"));
    assert_eq!(result.episodes[0].closed_at, Some(t("14:27:00")));
}

#[test]
fn case_10_the_latest_alarm_sets_the_severity() {
    let mut major = alarm("a1", "10:00:00", "10:00:00");
    major.severity = Some(Severity::Major);
    let mut critical = alarm("a2", "10:01:00", "10:01:00");
    critical.severity = Some(Severity::Critical);
    let result = run(&[critical, major]);
    assert_eq!(result.state.status, Status::Firing);
    assert_eq!(result.state.severity, Some(Severity::Critical));
    assert_eq!(result.episodes.len(), 1);
    assert_eq!(result.episodes[0].alarm_count, 2);
}

#[test]
fn case_11_a_recovery_without_any_alarm_is_a_stray() {
    let result = run(&[recovery("r", "10:00:00", "10:00:00")]);
    assert_eq!(result.state.status, Status::Resolved);
    assert!(result.episodes.is_empty());
    assert_eq!(result.state.stray_recovery_count, 1);
    assert_eq!(result.state.since, None);
}

#[test]
fn extend_refuses_an_event_that_sorts_before_the_folded_ones() {
    let folded = run(&[recovery("r", "10:05:00", "10:05:00")]).state;
    let early = alarm("a", "10:00:00", "10:05:01");
    assert!(folded
        .extend(&early, &Links::default(), &FoldConfig::default())
        .is_none());
}

#[test]
fn extend_refuses_an_alarm_that_a_recorded_recovery_resolves() {
    let folded = run(&[]).state;
    let named = alarm("P", "10:00:00", "10:00:00");
    let links = Links {
        resolved_alarm: None,
        named_by_a_recovery: true,
    };
    assert!(folded
        .extend(&named, &links, &FoldConfig::default())
        .is_none());
}

// ---- property tests -------------------------------------------------------------

fn arbitrary_event_set() -> impl Strategy<Value = Vec<RecordedEvent>> {
    let one = (
        0u8..5,
        0i64..8,
        0i64..8,
        proptest::option::of(0usize..12),
        proptest::option::of(0usize..5),
        0i64..3,
    );
    proptest::collection::vec(one, 1..12).prop_map(|specs| {
        let base = t("10:00:00");
        specs
            .iter()
            .enumerate()
            .map(
                |(i, (kind, occurred, recorded, resolves, severity, skew_days))| {
                    let kind = match kind {
                        0 | 1 => Kind::Alarm,
                        2 | 3 => Kind::Recovery,
                        _ => Kind::Acknowledgement,
                    };
                    let mut e = event(&format!("e{i:02}"), kind, "10:00:00", "10:00:00");
                    // Coarse minutes make ties common; a day of skew exercises the bound.
                    e.occurred_at =
                        Some(base + Duration::minutes(*occurred) + Duration::days(*skew_days / 2));
                    e.recorded_at = base + Duration::minutes(*recorded);
                    if kind == Kind::Recovery {
                        e.resolves = resolves.map(|r| format!("e{r:02}"));
                    }
                    e.severity = severity.map(|s| Severity::ALL[s]);
                    e.summary = severity.map(|s| format!("summary {s}"));
                    e
                },
            )
            .collect()
    })
}

/// What a projection does: extend when it may, fold the arrived set when it must,
/// and keep an episode table updated from each step's change.
fn project_in_arrival_order(arrivals: &[RecordedEvent]) -> AlertFold {
    let config = FoldConfig::default();
    let mut state = AlertState::default();
    let mut episodes: Vec<Episode> = Vec::new();
    for (i, event) in arrivals.iter().enumerate() {
        let arrived = &arrivals[..i];
        let links = Links {
            resolved_alarm: event
                .resolves
                .as_deref()
                .and_then(|id| arrived.iter().find(|e| e.event_id == id)),
            named_by_a_recovery: arrived.iter().any(|r| {
                r.kind == Kind::Recovery && r.resolves.as_deref() == Some(&event.event_id)
            }),
        };
        match state.extend(event, &links, &config) {
            Some((next, change)) => {
                state = next;
                let current = state.current_episode.clone();
                match change {
                    EpisodeChange::Opened => episodes.extend(current),
                    EpisodeChange::Joined | EpisodeChange::Closed | EpisodeChange::Acknowledged => {
                        *episodes.last_mut().expect("an episode is open") =
                            current.expect("an episode is open")
                    }
                    EpisodeChange::StrayRecovery | EpisodeChange::StrayAcknowledgement => {}
                }
            }
            None => {
                let refolded = fold(&arrivals[..=i], &config);
                state = refolded.state;
                episodes = refolded.episodes;
            }
        }
    }
    AlertFold { state, episodes }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_permutation_gives_the_same_state_and_episodes(
        (events, shuffled) in arbitrary_event_set().prop_flat_map(|events| {
            let shuffled = Just(events.clone()).prop_shuffle();
            (Just(events), shuffled)
        })
    ) {
        prop_assert_eq!(run(&events), run(&shuffled));
    }

    #[test]
    fn any_duplication_gives_the_same_state_and_episodes(
        events in arbitrary_event_set(),
        copies in proptest::collection::vec(0usize..12, 0..12),
    ) {
        let mut duplicated = events.clone();
        duplicated.extend(copies.iter().filter_map(|i| events.get(*i).cloned()));
        prop_assert_eq!(run(&events), run(&duplicated));
    }

    #[test]
    fn extending_in_any_arrival_order_equals_folding_the_set(
        (events, shuffled) in arbitrary_event_set().prop_flat_map(|events| {
            let shuffled = Just(events.clone()).prop_shuffle();
            (Just(events), shuffled)
        })
    ) {
        prop_assert_eq!(project_in_arrival_order(&shuffled), run(&events));
    }

    #[test]
    fn status_is_firing_exactly_when_the_last_event_in_order_is_an_alarm(
        events in arbitrary_event_set()
    ) {
        let config = FoldConfig::default();
        let last_kind = order(&events, &config)
            .iter()
            .rev()
            .map(|e| e.key.kind)
            .find(|kind| *kind != Kind::Acknowledgement);
        let state = run(&events).state;
        prop_assert_eq!(state.status == Status::Firing, last_kind == Some(Kind::Alarm));
    }

    #[test]
    fn acknowledgements_change_nothing_but_who_acknowledged(events in arbitrary_event_set()) {
        let without: Vec<RecordedEvent> = events
            .iter()
            .filter(|e| e.kind != Kind::Acknowledgement)
            .cloned()
            .collect();
        let strip = |mut folded: AlertFold| {
            for episode in folded.episodes.iter_mut().chain(folded.state.current_episode.as_mut()) {
                episode.acknowledged = None;
            }
            folded.state.last_key = None;
            folded
        };
        prop_assert_eq!(strip(run(&events)), strip(run(&without)));
    }
}

// ---- acknowledgements: given / when / then ------------------------------------

fn ack(id: &str, at: &str, by: &str) -> RecordedEvent {
    let mut e = event(id, Kind::Acknowledgement, at, at);
    e.occurred_at = None;
    e.source = Some(by.to_string());
    e.summary = Some("on it".to_string());
    e
}

#[test]
fn an_acknowledgement_while_firing_marks_the_current_episode_only() {
    let result = run(&[
        alarm("a1", "10:00:00", "10:00:00"),
        ack("k1", "10:01:00", "ana"),
        recovery("r1", "10:02:00", "10:02:00"),
        alarm("a2", "10:03:00", "10:03:00"),
    ]);
    assert_eq!(result.state.status, Status::Firing);
    assert_eq!(result.episodes.len(), 2);
    let first = result.episodes[0]
        .acknowledged
        .as_ref()
        .expect("acknowledged");
    assert_eq!(first.at, t("10:01:00"));
    assert_eq!(first.by.as_deref(), Some("ana"));
    assert_eq!(first.reason.as_deref(), Some("on it"));
    assert_eq!(first.event_id, "k1");
    assert_eq!(result.episodes[1].acknowledged, None);
    assert_eq!(
        result
            .state
            .current_episode
            .as_ref()
            .and_then(|e| e.acknowledged.clone()),
        None
    );
}

#[test]
fn an_acknowledgement_of_a_resolved_alert_is_stray_and_the_first_one_counts() {
    let result = run(&[
        ack("k0", "09:59:00", "early"),
        alarm("a1", "10:00:00", "10:00:00"),
        ack("k1", "10:01:00", "ana"),
        ack("k2", "10:01:30", "bo"),
    ]);
    assert_eq!(result.episodes.len(), 1);
    let acknowledged = result.episodes[0]
        .acknowledged
        .as_ref()
        .expect("acknowledged");
    assert_eq!(acknowledged.by.as_deref(), Some("ana"));
    assert_eq!(result.state.alarm_count, 1);
    assert_eq!(result.state.recovery_count, 0);
}
