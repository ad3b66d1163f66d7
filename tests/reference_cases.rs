//! BRIEF §3's reference cases, over HTTP, on a real database, with their exact outcomes.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{spawn_app, Engine, TestApp};
use serde_json::{json, Value};

fn event(id: &str, device: &str, kind: &str, occurred_at: &str) -> Value {
    json!({
        "event_id": id,
        "device_id": device,
        "alert_key": "offline",
        "kind": kind,
        "occurred_at": format!("2026-11-20T{occurred_at}Z"),
    })
}

fn at(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a time: {value}")),
    )
    .expect("RFC 3339")
    .with_timezone(&Utc)
}

fn t(text: &str) -> DateTime<Utc> {
    at(&json!(format!("2026-11-20T{text}Z")))
}

async fn record(app: &TestApp, body: Value) -> Value {
    let answer = app.post(&body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body
}

async fn case_1_the_242_ms_race_resolves_in_any_arrival_order(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let alarm = |d: &str| event(&format!("{d}-a"), d, "alarm", "21:00:00.000");
    let recovery = |d: &str| event(&format!("{d}-r"), d, "recovery", "21:05:00.200");
    record(&app, alarm("in-order")).await;
    record(&app, recovery("in-order")).await;
    record(&app, recovery("reversed")).await;
    record(&app, alarm("reversed")).await;
    let (together_alarm, together_recovery) = (alarm("together"), recovery("together"));
    let (a, r) = tokio::join!(app.post(&together_alarm), app.post(&together_recovery));
    assert_eq!((a.status, r.status), (201, 201));

    for device in ["in-order", "reversed", "together"] {
        let alert = app.alert(device, "offline").await;
        assert_eq!(alert["status"], "resolved", "{device}: {alert}");
        let episodes = alert["episodes"].as_array().expect("episodes");
        assert_eq!(episodes.len(), 1, "{device}");
        assert_eq!(at(&episodes[0]["opened_at"]), t("21:00:00.000"));
        assert_eq!(at(&episodes[0]["closed_at"]), t("21:05:00.200"));
        assert_eq!(episodes[0]["duration_ms"], 300_200);
    }
    assert_eq!(
        app.alert("reversed", "offline").await["episodes"][0]["reconciled"],
        true
    );
    assert_eq!(
        app.alert("in-order", "offline").await["episodes"][0]["reconciled"],
        false
    );
}

async fn case_2_a_recovery_recorded_first_reconciles(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("r", "d", "recovery", "10:00:00.242")).await;
    let answer = record(&app, event("a", "d", "alarm", "10:00:00.000")).await;
    assert_eq!(answer["alert"]["status"], "resolved");
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["episode_count"], 1);
    assert_eq!(alert["stray_recovery_count"], 0);
    assert_eq!(alert["episodes"][0]["reconciled"], true);
}

async fn case_3_a_late_resend_joins_the_closed_episode(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("a1", "d", "alarm", "10:00:00")).await;
    record(&app, event("r", "d", "recovery", "10:05:00")).await;
    record(&app, event("a2", "d", "alarm", "10:00:00")).await;
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episodes"].as_array().unwrap().len(), 1);
    assert_eq!(alert["episodes"][0]["alarm_count"], 2);
}

async fn case_4_a_later_alarm_fires_a_second_episode(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("a1", "d", "alarm", "10:00:00")).await;
    record(&app, event("r", "d", "recovery", "10:05:00")).await;
    record(&app, event("a2", "d", "alarm", "10:07:00")).await;
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["status"], "firing");
    assert_eq!(at(&alert["since"]), t("10:07:00"));
    assert_eq!(alert["episode_count"], 2);
    assert_eq!(alert["episodes"].as_array().unwrap().len(), 2);
}

async fn case_5_a_tie_resolves_with_zero_duration(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("a", "d", "alarm", "10:00:00")).await;
    record(&app, event("r", "d", "recovery", "10:00:00")).await;
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episodes"].as_array().unwrap().len(), 1);
    assert_eq!(alert["episodes"][0]["duration_ms"], 0);
}

async fn case_6_five_concurrent_copies_record_once(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let body = event("same", "d", "alarm", "10:00:00");
    let answers = futures::future::join_all((0..5).map(|_| app.post(&body))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 200, 200, 201]);
    let duplicates = answers
        .iter()
        .filter(|a| a.body["duplicate"] == true)
        .count();
    assert_eq!(duplicates, 4);
    assert!(answers.iter().all(|a| a.body["stream_version"] == 1));
    assert_eq!(app.trail("d").await.len(), 1);
}

async fn case_7_same_id_different_content_is_a_409(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("x", "d", "alarm", "10:00:00")).await;
    let answer = app.post(&event("x", "d", "recovery", "10:00:00")).await;
    assert_eq!(answer.status, 409);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["event_id"], "x");
    assert_eq!(app.trail("d").await.len(), 1);
    assert_eq!(app.alert("d", "offline").await["status"], "firing");
}

async fn case_8_an_alarm_from_tomorrow_is_flagged_and_bounded(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let tomorrow = (Utc::now() + Duration::days(1)).to_rfc3339();
    let answer = app
        .post(&json!({"event_id": "future", "device_id": "d", "kind": "alarm", "occurred_at": tomorrow}))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let trail = app.trail("d").await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["clock_skew"], true);
    assert_eq!(
        at(&trail[0]["effective_at"]),
        at(&trail[0]["recorded_at"]) + Duration::minutes(5)
    );
    let alert = app.alert("d", "default").await;
    assert_eq!(at(&alert["since"]), at(&trail[0]["effective_at"]));
}

async fn case_9_a_linked_recovery_never_precedes_its_alarm(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("P", "d", "alarm", "14:27:00")).await;
    let mut linked = event("r", "d", "recovery", "14:26:39");
    linked["resolves"] = json!("P");
    record(&app, linked).await;
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episodes"][0]["duration_ms"], 0);
    assert_eq!(at(&alert["episodes"][0]["closed_at"]), t("14:27:00"));
    let trail = app.trail("d").await;
    assert_eq!(at(&trail[1]["occurred_at"]), t("14:26:39"));
    assert_eq!(
        at(&trail[1]["effective_at"]),
        t("14:27:00"),
        "the trail shows the linked time"
    );
}

async fn case_9_also_holds_when_the_linked_recovery_arrives_first(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let mut linked = event("r", "d", "recovery", "14:26:39");
    linked["resolves"] = json!("P");
    record(&app, linked).await;
    record(&app, event("P", "d", "alarm", "14:27:00")).await;
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["stray_recovery_count"], 0);
    assert_eq!(alert["episodes"][0]["duration_ms"], 0);
}

async fn case_10_the_latest_alarm_sets_severity(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let mut critical = event("a2", "d", "alarm", "10:01:00");
    critical["severity"] = json!("critical");
    let mut major = event("a1", "d", "alarm", "10:00:00");
    major["severity"] = json!("major");
    record(&app, critical).await;
    record(&app, major).await;
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["episodes"].as_array().unwrap().len(), 1);
    assert_eq!(alert["episodes"][0]["alarm_count"], 2);
}

async fn case_11_a_recovery_without_alarm_is_a_stray(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("r", "d", "recovery", "10:00:00")).await;
    let alert = app.alert("d", "offline").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episode_count"], 0);
    assert_eq!(alert["stray_recovery_count"], 1);
    assert_eq!(alert["episodes"], json!([]));
    assert_eq!(app.trail("d").await.len(), 1);
}

async fn case_12_alert_keys_of_one_device_are_independent(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    record(&app, event("a1", "d", "alarm", "10:00:00")).await;
    let mut temp = event("a2", "d", "alarm", "10:00:00");
    temp["alert_key"] = json!("temp");
    record(&app, temp).await;
    record(&app, event("r1", "d", "recovery", "10:01:00")).await;
    let answer = app.get("/v1/devices/d/alerts").await;
    assert_eq!(answer.status, 200);
    let alerts = answer.body["alerts"].as_array().unwrap();
    let status_of = |key: &str| {
        alerts
            .iter()
            .find(|a| a["alert_key"] == key)
            .map(|a| a["status"].clone())
    };
    assert_eq!(status_of("offline"), Some(json!("resolved")));
    assert_eq!(status_of("temp"), Some(json!("firing")));
    assert_eq!(alerts.len(), 2);
}

on_both_engines!(
    case_1_the_242_ms_race_resolves_in_any_arrival_order,
    case_2_a_recovery_recorded_first_reconciles,
    case_3_a_late_resend_joins_the_closed_episode,
    case_4_a_later_alarm_fires_a_second_episode,
    case_5_a_tie_resolves_with_zero_duration,
    case_6_five_concurrent_copies_record_once,
    case_7_same_id_different_content_is_a_409,
    case_8_an_alarm_from_tomorrow_is_flagged_and_bounded,
    case_9_a_linked_recovery_never_precedes_its_alarm,
    case_9_also_holds_when_the_linked_recovery_arrives_first,
    case_10_the_latest_alarm_sets_severity,
    case_11_a_recovery_without_alarm_is_a_stray,
    case_12_alert_keys_of_one_device_are_independent,
);
