//! Alertmanager webhooks and PagerDuty Events v2 over HTTP, on both engines: real
//! payload shapes, re-sends as duplicates, resolves before their firing or trigger,
//! and bad payloads refused with nothing recorded.

mod common;

use common::{spawn_app, spawn_app_configured, Engine, TestApp};
use serde_json::{json, Value};

const AM: &str = "/v1/integrations/alertmanager";
const PD: &str = "/v1/integrations/pagerduty/enqueue";
const KEY: &str = r#"InstanceDown{job="node",severity="critical"}"#;
const KEY_PATH: &str = "InstanceDown%7Bjob%3D%22node%22%2Cseverity%3D%22critical%22%7D";

/// One alert as Alertmanager 0.25 sends it.
fn am_alert(status: &str, instance: &str, ends_at: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "InstanceDown", "instance": instance, "job": "node",
                   "severity": "critical"},
        "annotations": {"summary": format!("{instance} is down"),
                        "description": "no scrape for 0s"},
        "startsAt": "2026-12-03T10:00:00.123456789+01:00",
        "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
        "fingerprint": "1a30ba71cca2921f"
    })
}

/// A webhook notification (payload version 4) around `alerts`.
fn notification(status: &str, alerts: Vec<Value>) -> Value {
    json!({
        "receiver": "alert-ledger",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {"alertname": "InstanceDown", "job": "node"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{alertname=\"InstanceDown\"}",
        "truncatedAlerts": 0
    })
}

fn firing() -> Value {
    notification(
        "firing",
        vec![am_alert("firing", "web-1:9100", "0001-01-01T00:00:00Z")],
    )
}

fn resolved() -> Value {
    notification(
        "resolved",
        vec![am_alert("resolved", "web-1:9100", "2026-12-03T09:05:00.5Z")],
    )
}

const ALARM_ID: &str = "am:1a30ba71cca2921f:firing:2026-12-03T09:00:00.123456Z";
const RECOVERY_ID: &str = "am:1a30ba71cca2921f:resolved:2026-12-03T09:00:00.123456Z";

/// Every event recorded anywhere, from the global feed.
/// The value of one `/metrics` line, e.g. `alert_ledger_integration_invalid_total{integration="pagerduty"}`.
async fn metric(app: &TestApp, series: &str) -> u64 {
    let body = app.get("/metrics").await.body;
    let text = body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
}

const AM_INVALID: &str = "alert_ledger_integration_invalid_total{integration=\"alertmanager\"}";
const PD_INVALID: &str = "alert_ledger_integration_invalid_total{integration=\"pagerduty\"}";

/// How many events the log holds, counted in the database itself: the feed is no
/// witness here, because on PostgreSQL it holds back events behind any transaction
/// still open anywhere in the cluster (another test's, say), so "empty" could be a lie.
async fn recorded_events(app: &TestApp) -> usize {
    let count: i64 = alert_ledger::with_pool!(&app.state.db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(pool).await
    })
    .expect("count events");
    usize::try_from(count).expect("a count")
}

async fn alertmanager_firing_resend_and_resolve(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let answer = app.post_to(AM, &firing()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"recorded": 1, "duplicates": 0, "invalid": 0, "alerts": [{
            "index": 0, "result": "recorded", "event_id": ALARM_ID, "device_id": "web-1:9100",
            "alert_key": KEY, "kind": "alarm", "stream_version": 1, "alert_status": "firing"}]})
    );
    // Alertmanager re-sends the group on every repeat_interval: a duplicate each time.
    for _ in 0..3 {
        let answer = app.post_to(AM, &firing()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["duplicates"], 1);
        assert_eq!(answer.body["alerts"][0]["result"], "duplicate");
    }
    let answer = app.post_to(AM, &resolved()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["alerts"][0],
        json!({"index": 0, "result": "recorded", "event_id": RECOVERY_ID,
               "device_id": "web-1:9100", "alert_key": KEY, "kind": "recovery",
               "stream_version": 2, "alert_status": "resolved"})
    );
    assert_eq!(app.post_to(AM, &resolved()).await.body["duplicates"], 1);

    let alert = app.alert("web-1:9100", KEY_PATH).await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["summary"], "web-1:9100 is down");
    assert_eq!(alert["episode_count"], 1);
    let episode = &alert["episodes"][0];
    assert_eq!(episode["opened_at"], "2026-12-03T09:00:00.123456Z");
    assert_eq!(episode["closed_at"], "2026-12-03T09:05:00.500Z");
    assert_eq!(episode["duration_ms"], 300_376);
    assert_eq!(episode["reconciled"], false);

    let trail = app.trail("web-1:9100").await;
    assert_eq!(trail.len(), 2);
    let alarm = &trail[0];
    assert_eq!(alarm["event_id"], ALARM_ID);
    assert_eq!(alarm["source"], "alertmanager");
    assert_eq!(
        alarm["labels"],
        json!({"alertname": "InstanceDown", "instance": "web-1:9100", "job": "node", "severity": "critical"})
    );
    assert_eq!(
        alarm["payload"],
        json!({"fingerprint": "1a30ba71cca2921f",
               "startsAt": "2026-12-03T10:00:00.123456789+01:00",
               "annotations": {"summary": "web-1:9100 is down", "description": "no scrape for 0s"},
               "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"})
    );
    let recovery = &trail[1];
    assert_eq!(recovery["kind"], "recovery");
    assert_eq!(recovery["occurred_at"], "2026-12-03T09:05:00.500Z");
    assert_eq!(recovery["resolves"], ALARM_ID);
    assert_eq!(recovery["severity"], Value::Null);
}

async fn alertmanager_resolved_before_firing_reconciles(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    // The firing notification was lost (or is still being retried): the resolved one
    // is recorded on its own and the alert is resolved.
    let answer = app.post_to(AM, &resolved()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["alerts"][0]["alert_status"], "resolved");
    let alert = app.alert("web-1:9100", KEY_PATH).await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episode_count"], 0);
    assert_eq!(alert["stray_recovery_count"], 1);

    // The firing one arrives late: one closed episode, reconciled, still resolved.
    let answer = app.post_to(AM, &firing()).await;
    assert_eq!(answer.body["alerts"][0]["result"], "recorded");
    assert_eq!(answer.body["alerts"][0]["alert_status"], "resolved");
    let alert = app.alert("web-1:9100", KEY_PATH).await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["stray_recovery_count"], 0);
    assert_eq!(alert["episode_count"], 1);
    assert_eq!(
        alert["episodes"][0]["opened_at"],
        "2026-12-03T09:00:00.123456Z"
    );
    assert_eq!(
        alert["episodes"][0]["closed_at"],
        "2026-12-03T09:05:00.500Z"
    );
    assert_eq!(alert["episodes"][0]["closed_by_event_id"], RECOVERY_ID);
    assert_eq!(alert["episodes"][0]["reconciled"], true);
}

async fn alertmanager_answers_per_alert_and_records_the_valid_ones(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let mut no_instance = am_alert("firing", "x", "0001-01-01T00:00:00Z");
    no_instance["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("instance");
    let mut bad_time = am_alert("resolved", "web-2:9100", "0001-01-01T00:00:00Z");
    bad_time["annotations"]["summary"] = json!("a\u{0}b");
    let body = notification(
        "firing",
        vec![
            no_instance,
            am_alert("firing", "web-1:9100", "0001-01-01T00:00:00Z"),
            bad_time,
            json!("not an alert"),
        ],
    );
    let answer = app.post_to(AM, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"recorded": 1, "duplicates": 0, "invalid": 3, "alerts": [
            {"index": 0, "result": "invalid", "errors": [
                {"field": "alerts[0].labels.instance", "detail": "is required: the device id is taken from this label"}]},
            {"index": 1, "result": "recorded", "event_id": ALARM_ID, "device_id": "web-1:9100",
             "alert_key": KEY, "kind": "alarm", "stream_version": 1, "alert_status": "firing"},
            {"index": 2, "result": "invalid", "errors": [
                {"field": "alerts[2].endsAt", "detail": "must be an RFC 3339 timestamp between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"}]},
            {"index": 3, "result": "invalid", "errors": [
                {"field": "alerts[3]", "detail": "must be an alert object"}]}
        ]})
    );
    assert_eq!(recorded_events(&app).await, 1);

    // A NUL in an annotation is caught by the ledger's own rules, named in AM's terms.
    let mut nul = am_alert("firing", "web-3:9100", "0001-01-01T00:00:00Z");
    nul["annotations"]["summary"] = json!("a\u{0}b");
    let answer = app.post_to(AM, &notification("firing", vec![nul])).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(
        answer.body["errors"],
        json!([
            {"field": "alerts[0].annotations.summary", "detail": "must not contain NUL characters (\\u0000)"}
        ])
    );
    assert_eq!(recorded_events(&app).await, 1);
    assert_eq!(metric(&app, AM_INVALID).await, 4);
    assert_eq!(metric(&app, PD_INVALID).await, 0);
}

async fn alertmanager_bad_notifications_record_nothing(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let not_json = app.request(reqwest::Method::POST, AM, None, None).await;
    assert_eq!(not_json.status, 415, "{}", not_json.body);

    let mut v3 = firing();
    v3["version"] = json!("3");
    let answer = app.post_to(AM, &v3).await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(
        answer.body["errors"],
        json!([{"field": "version", "detail": "must be \"4\" (the webhook payload version this endpoint reads)"}])
    );

    let answer = app
        .post_to(AM, &json!({"version": "4", "alerts": []}))
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body["errors"],
        json!([{"field": "alerts", "detail": "must hold at least one alert"}])
    );

    let answer = app.post_to(AM, &json!([1])).await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body["errors"],
        json!([{"field": "", "detail": "expected an Alertmanager webhook notification (a JSON object)"}])
    );

    // Every alert invalid: 422 listing them all.
    let answer = app
        .post_to(
            AM,
            &notification(
                "firing",
                vec![json!({"status": "pending", "labels": {"instance": "d"}, "startsAt": "yesterday",
                            "fingerprint": "not hex!"})],
            ),
        )
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body["errors"],
        json!([
            {"field": "alerts[0].status", "detail": "must be \"firing\" or \"resolved\""},
            {"field": "alerts[0].labels.alertname", "detail": "is required"},
            {"field": "alerts[0].startsAt", "detail": "must be an RFC 3339 timestamp between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"},
            {"field": "alerts[0].fingerprint", "detail": "must be 1 to 64 letters or digits"}
        ])
    );

    let answer = app.post_to(&format!("{AM}?dry_run=1"), &firing()).await;
    assert_eq!(answer.status, 400);
    assert_eq!(recorded_events(&app).await, 0);
    // Four notifications refused for their content; the 415 and the 400 never got that far.
    assert_eq!(metric(&app, AM_INVALID).await, 4);
}

async fn alertmanager_edge_cases(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    // Annotations re-rendered between re-sends: same alert instance, first content kept.
    let mut changed = firing();
    changed["alerts"][0]["annotations"]["description"] = json!("no scrape for 30s");
    assert_eq!(app.post_to(AM, &firing()).await.body["recorded"], 1);
    let answer = app.post_to(AM, &changed).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["duplicates"], 1);
    assert_eq!(answer.body["alerts"][0]["result"], "duplicate");
    assert_eq!(answer.body["alerts"][0]["content_differs"], true);
    assert_eq!(recorded_events(&app).await, 1);

    // A label set too long for an alert key: shortened with a hash, the same each time.
    let mut long = am_alert("firing", "web-9:9100", "0001-01-01T00:00:00Z");
    long["labels"]["path"] = json!("/very/long".repeat(30));
    let answer = app
        .post_to(AM, &notification("firing", vec![long.clone()]))
        .await;
    assert_eq!(answer.body["recorded"], 1, "{}", answer.body);
    let key = answer.body["alerts"][0]["alert_key"]
        .as_str()
        .expect("key")
        .to_string();
    assert_eq!(key.chars().count(), 200);
    assert!(
        key.starts_with("InstanceDown{job=\"node\",path=\"/very/long/very/long"),
        "{key}"
    );
    let again = app.post_to(AM, &notification("firing", vec![long])).await;
    assert_eq!(again.body["alerts"][0]["alert_key"], json!(key));
    assert_eq!(again.body["duplicates"], 1);

    // Without a fingerprint the label set identifies the alert.
    let mut no_fp = am_alert("firing", "web-8:9100", "0001-01-01T00:00:00Z");
    no_fp.as_object_mut().expect("alert").remove("fingerprint");
    let answer = app
        .post_to(AM, &notification("firing", vec![no_fp.clone()]))
        .await;
    let id = answer.body["alerts"][0]["event_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert!(
        id.starts_with("am:") && id.ends_with(":firing:2026-12-03T09:00:00.123456Z"),
        "{id}"
    );
    let again = app.post_to(AM, &notification("firing", vec![no_fp])).await;
    assert_eq!(again.body["alerts"][0]["event_id"], json!(id));
    assert_eq!(again.body["duplicates"], 1);
}

async fn alertmanager_device_label_is_configurable(engine: Engine) {
    let Some(app) = spawn_app_configured(engine, |state| {
        state.alertmanager = std::sync::Arc::new(
            alert_ledger::integrations::alertmanager::AlertmanagerSettings {
                device_label: "job".into(),
            },
        );
    })
    .await
    else {
        return;
    };
    let answer = app.post_to(AM, &firing()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["alerts"][0]["device_id"], "node");
    assert_eq!(
        answer.body["alerts"][0]["alert_key"],
        r#"InstanceDown{instance="web-1:9100",severity="critical"}"#
    );
}

fn pd(action: &str, key: &str, payload: Option<Value>) -> Value {
    let mut event = json!({"routing_key": "R0123456789abcdef0123456789abcdef", "event_action": action, "dedup_key": key});
    if let Some(payload) = payload {
        event["payload"] = payload;
    }
    event
}

fn pd_trigger(key: &str, source: &str, timestamp: &str) -> Value {
    pd(
        "trigger",
        key,
        Some(
            json!({"summary": format!("{source} disk full"), "source": source, "severity": "critical",
                    "timestamp": timestamp, "component": "disk", "group": "db", "class": "capacity",
                    "custom_details": {"free": "0%", "mount": "/var"}}),
        ),
    )
}

fn accepted(key: &str) -> Value {
    json!({"status": "success", "message": "Event processed", "dedup_key": key})
}

async fn pagerduty_trigger_then_resolve(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let trigger = pd_trigger("db-1/disk", "db-1", "2026-12-03T10:00:00.000+0000");
    let answer = app.post_to(PD, &trigger).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body, accepted("db-1/disk"));
    // A retry of the same event is a duplicate, not a second alarm.
    assert_eq!(app.post_to(PD, &trigger).await.status, 202);
    let alert = app.alert("db-1", "db-1%2Fdisk").await;
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["summary"], "db-1 disk full");
    assert_eq!(alert["alarm_count"], 1);

    // The resolve carries only the dedup key: its device is looked up.
    let answer = app.post_to(PD, &pd("resolve", "db-1/disk", None)).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body, accepted("db-1/disk"));
    let alert = app.alert("db-1", "db-1%2Fdisk").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episode_count"], 1);
    assert_eq!(alert["episodes"][0]["reconciled"], false);

    let trail = app.trail("db-1").await;
    assert_eq!(trail.len(), 2);
    assert_eq!(
        trail[0]["event_id"],
        "pd:db-1/disk:trigger:2026-12-03T10:00:00.000000Z"
    );
    assert_eq!(trail[0]["source"], "pagerduty");
    assert_eq!(
        trail[0]["labels"],
        json!({"class": "capacity", "component": "disk", "group": "db"})
    );
    assert_eq!(
        trail[0]["payload"],
        json!({"dedup_key": "db-1/disk", "custom_details": {"free": "0%", "mount": "/var"}})
    );
    assert_eq!(trail[1]["kind"], "recovery");
    assert_eq!(trail[1]["occurred_at_given"], false);
    assert_eq!(recorded_events(&app).await, 2);
}

async fn pagerduty_resolve_before_trigger_reconciles(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    // With payload.source, the resolve lands on the device straight away.
    let resolve = pd(
        "resolve",
        "db-2/disk",
        Some(json!({"source": "db-2", "timestamp": "2026-12-03T10:00:00.242Z"})),
    );
    assert_eq!(app.post_to(PD, &resolve).await.status, 202);
    let trigger = pd_trigger("db-2/disk", "db-2", "2026-12-03T10:00:00.000Z");
    assert_eq!(app.post_to(PD, &trigger).await.status, 202);
    let alert = app.alert("db-2", "db-2%2Fdisk").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episode_count"], 1);
    assert_eq!(
        alert["episodes"][0]["closed_at"],
        "2026-12-03T10:00:00.242Z"
    );
    assert_eq!(alert["episodes"][0]["reconciled"], true);

    // Without payload.source and never seen: kept on the placeholder device, then
    // adopted by the device whose trigger comes later.
    assert_eq!(
        app.post_to(PD, &pd("resolve", "db-3/disk", None))
            .await
            .status,
        202
    );
    let parked = app.alert("pagerduty:unknown-source", "db-3%2Fdisk").await;
    assert_eq!(parked["stray_recovery_count"], 1);
    let trigger = pd_trigger("db-3/disk", "db-3", "2026-12-03T10:00:00.000Z");
    assert_eq!(app.post_to(PD, &trigger).await.status, 202);
    // A retried trigger adopts the same copy again: a duplicate.
    assert_eq!(app.post_to(PD, &trigger).await.status, 202);
    let alert = app.alert("db-3", "db-3%2Fdisk").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episode_count"], 1);
    assert_eq!(alert["recovery_count"], 1);
    assert_eq!(alert["episodes"][0]["reconciled"], true);
    let trail = app.trail("db-3").await;
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0]["kind"], "recovery");
    assert_eq!(
        trail[0]["payload"]["adopted_from"]["device_id"],
        "pagerduty:unknown-source"
    );
}

async fn pagerduty_resolve_closes_a_trigger_from_a_clock_ahead(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    // The sender's clock is two minutes ahead of ours; its resolve has no timestamp.
    let ahead = (chrono::Utc::now() + chrono::Duration::minutes(2))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    assert_eq!(
        app.post_to(PD, &pd_trigger("db-5/disk", "db-5", &ahead))
            .await
            .status,
        202
    );
    assert_eq!(
        app.post_to(PD, &pd("resolve", "db-5/disk", None))
            .await
            .status,
        202
    );
    let alert = app.alert("db-5", "db-5%2Fdisk").await;
    assert_eq!(alert["status"], "resolved", "{alert}");
    assert_eq!(alert["episodes"][0]["duration_ms"], 0);
    assert_eq!(alert["last_recovery_at"], alert["last_alarm_at"]);
}

async fn pagerduty_invalid_events_record_nothing(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let answer = app
        .post_to(
            PD,
            &json!({"event_action": "trigger", "dedup_key": "k", "severity": "high",
                    "payload": {"summary": "", "source": "h", "severity": "high",
                                "timestamp": "yesterday", "custom": 1}}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(
        answer.body,
        json!({"status": "invalid event", "message": "Event object is invalid", "errors": [
            "'severity' is not a field of an Events API v2 event",
            "'routing_key' is missing or blank",
            "'payload.custom' is not a field of an Events API v2 payload",
            "'payload.summary' is missing or blank",
            "'payload.severity' is invalid (must be critical, error, warning or info)",
            "'payload.timestamp' must be an ISO 8601 timestamp with an offset, e.g. 2026-12-03T21:05:00.200+0000"
        ]})
    );
    let answer = app.post_to(PD, &pd("resolve", "", None)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body["errors"],
        json!(["'dedup_key' is missing or blank (resolve and acknowledge need it)"])
    );
    let answer = app.post_to(PD, &pd("snooze", "k", None)).await;
    assert_eq!(
        answer.body["errors"],
        json!(["'event_action' is invalid (must be trigger, acknowledge or resolve)"])
    );
    let answer = app
        .post_to(PD, &pd_trigger("k", "h\u{0}", "2026-12-03T10:00:00Z"))
        .await;
    assert_eq!(
        answer.body["errors"],
        json!(["'payload.source' must not contain control characters"])
    );
    let not_json = app
        .client
        .post(format!("{}{PD}", app.address))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("request");
    assert_eq!(not_json.status(), 400);
    assert_eq!(recorded_events(&app).await, 0);
    assert_eq!(metric(&app, PD_INVALID).await, 5);
    assert_eq!(metric(&app, AM_INVALID).await, 0);
}

async fn pagerduty_acknowledge_and_generated_keys(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let answer = app.post_to(PD, &pd("acknowledge", "db-1/disk", None)).await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body, accepted("db-1/disk"));
    assert_eq!(recorded_events(&app).await, 0);

    let mut trigger = pd_trigger("x", "db-4", "2026-12-03T10:00:00Z");
    trigger.as_object_mut().expect("event").remove("dedup_key");
    let answer = app.post_to(PD, &trigger).await;
    assert_eq!(answer.status, 202);
    let key = answer.body["dedup_key"].as_str().expect("generated key");
    assert_eq!(
        uuid::Uuid::parse_str(key).expect("uuid").get_version_num(),
        7
    );
    assert_eq!(app.alert("db-4", key).await["status"], "firing");

    // An acknowledge of a firing alert is the ledger's acknowledgement; a repeat, or one
    // for a resolved alert, records nothing more.
    let ack = json!({"routing_key": "r0ut1ng", "event_action": "acknowledge", "dedup_key": key});
    assert_eq!(app.post_to(PD, &ack).await.status, 202);
    assert_eq!(app.post_to(PD, &ack).await.status, 202);
    let trail = app.trail("db-4").await;
    let kinds: Vec<&str> = trail.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["alarm", "acknowledgement"]);
    assert_eq!(trail[1]["source"], "pagerduty");
    let resolve = json!({"routing_key": "r0ut1ng", "event_action": "resolve", "dedup_key": key,
                         "payload": {"source": "db-4", "timestamp": "2026-12-03T10:05:00Z"}});
    assert_eq!(app.post_to(PD, &resolve).await.status, 202);
    assert_eq!(app.post_to(PD, &ack).await.status, 202);
    assert_eq!(app.trail("db-4").await.len(), 3);
}

on_both_engines!(
    alertmanager_firing_resend_and_resolve,
    alertmanager_resolved_before_firing_reconciles,
    alertmanager_answers_per_alert_and_records_the_valid_ones,
    alertmanager_bad_notifications_record_nothing,
    alertmanager_edge_cases,
    alertmanager_device_label_is_configurable,
    pagerduty_trigger_then_resolve,
    pagerduty_resolve_before_trigger_reconciles,
    pagerduty_resolve_closes_a_trigger_from_a_clock_ahead,
    pagerduty_invalid_events_record_nothing,
    pagerduty_acknowledge_and_generated_keys,
);
