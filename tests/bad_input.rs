//! Every class of bad input gets its exact 4xx as problem+json, and records nothing.

mod common;

use common::{spawn_app, Answer, Engine, TestApp};
use serde_json::{json, Value};

fn good() -> Value {
    json!({"event_id": "e-good", "device_id": "d", "alert_key": "offline", "kind": "alarm",
           "occurred_at": "2026-11-20T10:00:00Z"})
}

fn with(field: &str, value: Value) -> Value {
    let mut event = good();
    event[field] = value;
    event
}

fn without(field: &str) -> Value {
    let mut event = good();
    event.as_object_mut().expect("object").remove(field);
    event
}

/// Seed one event, so "unchanged" is checked against a non-empty trail.
async fn seeded(engine: Engine) -> Option<TestApp> {
    let app = spawn_app(engine).await?;
    let seed = json!({"event_id": "seed", "device_id": "d", "kind": "alarm",
                      "occurred_at": "2026-11-20T09:00:00Z"});
    assert_eq!(app.post(&seed).await.status, 201);
    Some(app)
}

async fn assert_nothing_recorded(app: &TestApp) {
    let trail = app.trail("d").await;
    assert_eq!(trail.len(), 1, "trail changed: {trail:?}");
    assert_eq!(trail[0]["event_id"], "seed");
    let others = app.all_alerts("firing").await.len() + app.all_alerts("resolved").await.len();
    assert_eq!(others, 1, "alerts changed");
}

fn assert_problem(answer: &Answer, status: u16, field: Option<&str>) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["status"], status);
    assert!(answer.body["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("https://")));
    assert!(answer.body["title"].is_string() && answer.body["detail"].is_string());
    if let Some(field) = field {
        let errors = answer.body["errors"].as_array().expect("errors list");
        assert!(
            errors.iter().any(|e| e["field"] == field),
            "expected an error naming {field}: {}",
            answer.body
        );
    }
}

async fn invalid_fields_are_named_with_422(engine: Engine) {
    let Some(app) = seeded(engine).await else {
        return;
    };
    let long = |n: usize| json!("x".repeat(n));
    let cases: Vec<(Value, &str)> = vec![
        (
            with("occured_at", json!("2026-11-20T10:00:00Z")),
            "occured_at",
        ),
        (with("unexpected", json!(1)), "unexpected"),
        (without("device_id"), "device_id"),
        (without("kind"), "kind"),
        (with("kind", json!("alarms")), "kind"),
        (with("kind", json!(1)), "kind"),
        (with("device_id", json!("")), "device_id"),
        (with("device_id", long(201)), "device_id"),
        (with("device_id", json!("room\u{0007}1")), "device_id"),
        (with("device_id", json!(42)), "device_id"),
        (with("event_id", long(129)), "event_id"),
        (with("event_id", json!("")), "event_id"),
        (with("alert_key", long(201)), "alert_key"),
        (with("alert_key", json!("a\nb")), "alert_key"),
        (
            with("occurred_at", json!("2026-11-20T10:00:00")),
            "occurred_at",
        ),
        (with("occurred_at", json!("yesterday")), "occurred_at"),
        (with("occurred_at", json!(1732096800)), "occurred_at"),
        (with("severity", json!("high")), "severity"),
        (with("summary", long(1025)), "summary"),
        (with("labels", json!({"env": 1})), "labels.env"),
        (with("labels", json!(["env"])), "labels"),
        (
            with("payload", json!({"blob": "y".repeat(64 * 1024)})),
            "payload",
        ),
        (with("resolves", json!("seed")), "resolves"),
        (with("source", json!("")), "source"),
        (with("summary", json!("a\u{0000}b")), "summary"),
        (with("labels", json!({"k": "x\u{0000}"})), "labels.k"),
        (
            with("payload", json!({"deep": ["ok", "\u{0000}"]})),
            "payload.deep[1]",
        ),
        (
            with("occurred_at", json!("9999-12-31T23:59:59-23:59")),
            "occurred_at",
        ),
        (
            with("occurred_at", json!("1969-12-31T23:59:59Z")),
            "occurred_at",
        ),
    ];
    for (body, field) in cases {
        let answer = app.post(&body).await;
        assert_problem(&answer, 422, Some(field));
    }
    assert_nothing_recorded(&app).await;
}

async fn limits_are_inclusive(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let mut event = good();
    event["device_id"] = json!("d".repeat(200));
    event["event_id"] = json!("e".repeat(128));
    event["summary"] = json!("s".repeat(1024));
    let answer = app.post(&event).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
}

async fn malformed_bodies_get_400_413_415(engine: Engine) {
    let Some(app) = seeded(engine).await else {
        return;
    };
    let body = good().to_string();
    assert_problem(
        &app.post_raw("{\"device_id\":", Some("application/json"))
            .await,
        400,
        None,
    );
    assert_problem(&app.post_raw("", Some("application/json")).await, 400, None);
    assert_problem(
        &app.post_raw(
            r#"{"event_id":"x","device_id":"d","kind":"alarm","kind":"recovery"}"#,
            Some("application/json"),
        )
        .await,
        400,
        None,
    );
    assert_problem(
        &app.post_raw(body.clone(), Some("text/plain")).await,
        415,
        None,
    );
    assert_problem(&app.post_raw(body.clone(), None).await, 415, None);
    let huge = format!(
        r#"{{"device_id":"d","kind":"alarm","summary":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    assert_problem(
        &app.post_raw(huge, Some("application/json")).await,
        413,
        None,
    );
    assert_problem(
        &app.post_raw("\"alarm\"", Some("application/json")).await,
        422,
        Some(""),
    );
    assert_problem(
        &app.post_raw("[]", Some("application/json")).await,
        422,
        Some(""),
    );
    assert_nothing_recorded(&app).await;
}

async fn a_batch_with_one_bad_item_records_nothing(engine: Engine) {
    let Some(app) = seeded(engine).await else {
        return;
    };
    let mut bad = good();
    bad["kind"] = json!("nope");
    let batch = json!([with("event_id", json!("b1")), bad, 7]);
    let answer = app.post(&batch).await;
    assert_problem(&answer, 422, Some("[1].kind"));
    assert_problem(&answer, 422, Some("[2]"));
    let too_many: Vec<Value> = (0..1001)
        .map(|i| with("event_id", json!(format!("many-{i}"))))
        .collect();
    assert_problem(&app.post(&json!(too_many)).await, 422, Some(""));
    assert_nothing_recorded(&app).await;
}

async fn bad_queries_and_paths_get_400_and_unknown_ones_404(engine: Engine) {
    let Some(app) = seeded(engine).await else {
        return;
    };
    for path in [
        "/v1/alerts?limit=0",
        "/v1/alerts?limit=1001",
        "/v1/alerts?limit=ten",
        "/v1/alerts?status=open",
        "/v1/alerts?cursor=not-a-cursor",
        "/v1/alerts?cursor=WyJcdTAwMDAiLCAiXHUwMDAwIl0",
        "/v1/alerts?statuss=firing",
        "/v1/alerts?limit=1&limit=2",
        "/v1/devices/d/events?cursor=%%%",
        "/v1/devices/d/events?alert_key=",
        "/v1/devices/d/events?kind=alarmz",
        "/v1/devices/d/events?status=firing",
        "/v1/devices/d%07/alerts",
        "/v1/devices/%FF/alerts",
        "/v1/devices/%FF/alerts/offline",
        "/v1/devices/%FF/events",
        "/v1/devices/d/alerts?foo=1",
        "/v1/devices/d/alerts/default?foo=1",
    ] {
        assert_problem(&app.get(path).await, 400, None);
    }
    for path in [
        "/v1/devices/nobody/alerts",
        "/v1/devices/d/alerts/nothing",
        "/v1/devices/nobody/events",
        "/v1/nothing",
    ] {
        assert_problem(&app.get(path).await, 404, None);
    }
    let answer = app
        .client
        .delete(format!("{}/v1/events", app.address))
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status().as_u16(), 405);
    assert_nothing_recorded(&app).await;
}

on_both_engines!(
    invalid_fields_are_named_with_422,
    limits_are_inclusive,
    malformed_bodies_get_400_413_415,
    a_batch_with_one_bad_item_records_nothing,
    bad_queries_and_paths_get_400_and_unknown_ones_404,
);
