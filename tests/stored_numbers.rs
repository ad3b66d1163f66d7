//! Numbers in payloads and labels read back exactly as they were accepted, on both
//! engines: a re-sent event is a duplicate, never a conflict, and no accepted number can
//! make a trail, the feed or the next start-up fail to decode the log.
//!
//! PostgreSQL's `jsonb` stores numbers as decimals (`1.7976931348623157e308` comes back
//! as a 309-digit integer), so reading them back needs correctly rounded float parsing.

mod common;

use common::{spawn_app, Engine};
use serde_json::Value;

const NUMBERS: [&str; 6] = [
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "123456789.123456789",
    "5e-324",
    "0.1",
    "18446744073709551616",
];

async fn payload_numbers_read_back_exactly_and_resends_are_duplicates(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    for (n, number) in NUMBERS.iter().enumerate() {
        let body = format!(
            r#"{{"device_id":"num-1","alert_key":"k{n}","kind":"alarm","event_id":"n{n}","payload":{{"value":{number}}}}}"#
        );
        let first = app.post_raw(body.clone(), Some("application/json")).await;
        assert_eq!(first.status, 201, "{number}: {}", first.body);
        let again = app.post_raw(body, Some("application/json")).await;
        assert_eq!(again.status, 200, "{number}: {}", again.body);
        assert_eq!(again.body["duplicate"], true, "{number}");
    }
    let trail = app.trail("num-1").await;
    assert_eq!(trail.len(), NUMBERS.len());
    for (event, number) in trail.iter().zip(NUMBERS) {
        let expected: Value = serde_json::from_str(number).expect("a JSON number");
        assert_eq!(event["payload"]["value"], expected, "{number}");
    }
    let feed = app.get("/v1/events?limit=100").await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    // The alert state still moves: a later recovery resolves the first alert.
    let recovery = app
        .post_raw(
            r#"{"device_id":"num-1","alert_key":"k0","kind":"recovery","event_id":"r0"}"#,
            Some("application/json"),
        )
        .await;
    assert_eq!(recovery.status, 201, "{}", recovery.body);
    let alert = app.get("/v1/devices/num-1/alerts/k0").await;
    assert_eq!(alert.body["status"], "resolved", "{}", alert.body);
}

on_both_engines!(payload_numbers_read_back_exactly_and_resends_are_duplicates);

/// A stream the projector cannot decode (written by some older bug, or by hand) must
/// not keep the service, and every other device, from starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_stream_leaves_its_device_behind_but_the_service_starts() {
    let app = spawn_app(Engine::Sqlite).await.expect("sqlite");
    let url = app.database_url.clone();
    let good = r#"{"device_id":"good","alert_key":"offline","kind":"alarm","event_id":"g1"}"#;
    assert_eq!(
        app.post_raw(good, Some("application/json")).await.status,
        201
    );
    alert_ledger::with_pool!(&app.state.db, pool => {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('device', 'poisoned', 1, 'Recorded', '1.0', '{\"event_id\":\"p1\",\"alert_key\":\"offline\",\"kind\":\"gremlin\"}', '{}')",
        )
        .execute(pool)
        .await
        .map(|_| ())
    })
    .expect("insert an undecodable event");
    let dir = app.stop().await;

    let restarted = common::spawn_app_on(&url).await;
    let later = r#"{"device_id":"good","alert_key":"offline","kind":"recovery","event_id":"g2"}"#;
    let answer = restarted.post_raw(later, Some("application/json")).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["alert"]["status"], "resolved");
    drop(dir);
}
