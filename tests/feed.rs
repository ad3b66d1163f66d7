//! The global feed: every event exactly once, and on PostgreSQL never skipping an event
//! whose transaction commits after later ones.

mod common;

use std::collections::BTreeSet;

use common::{spawn_app, Engine, TestApp};
use serde_json::{json, Value};
use sqlx::Connection;

async fn follow(app: &TestApp, after: i64, limit: usize) -> (Vec<Value>, i64) {
    let answer = app
        .get(&format!("/v1/events?after={after}&limit={limit}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let events = answer.body["events"].as_array().expect("events").clone();
    (
        events,
        answer.body["next_after"].as_i64().expect("next_after"),
    )
}

async fn a_follower_sees_every_event_once(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let batch: Vec<Value> = (0..25)
        .map(|i| json!({"event_id": format!("f{i}"), "device_id": format!("dev-{}", i % 4), "kind": "alarm"}))
        .collect();
    assert_eq!(app.post(&json!(batch)).await.status, 200);
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let (events, next) = follow(&app, after, 4).await;
        if events.is_empty() {
            assert_eq!(next, after);
            break;
        }
        seen.extend(
            events
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_string()),
        );
        after = next;
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 25);
    assert_eq!(app.get("/v1/events?after=999999").await.status, 400);
    assert_eq!(app.get("/v1/events?after=-1").await.status, 400);
}

on_both_engines!(a_follower_sees_every_event_once);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_committing_transaction_is_not_skipped() {
    let Some(app) = spawn_app(Engine::Postgres).await else {
        return;
    };
    let early = json!({"event_id": "early", "device_id": "a", "kind": "alarm"});
    assert_eq!(app.post(&early).await.status, 201);
    let (events, after) = follow(&app, 0, 100).await;
    assert_eq!(events.len(), 1);

    // A writer takes its position now but commits last, as a slow append would.
    let mut slow = sqlx::PgConnection::connect(&app.database_url)
        .await
        .expect("connect");
    let mut open = slow.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('device', 'slow', 1, 'alarm', '1', $1, '{}')",
    )
    .bind(json!({"type": "recorded", "event_id": "slow", "kind": "alarm", "alert_key": "default",
                 "recorded_at": "2026-11-20T10:00:00Z"}))
    .execute(&mut *open)
    .await
    .expect("insert in open transaction");

    for i in 0..3 {
        let later = json!({"event_id": format!("later-{i}"), "device_id": "b", "kind": "alarm"});
        assert_eq!(app.post(&later).await.status, 201);
    }
    let positions: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(&app.state_pool())
        .await
        .expect("positions");
    assert_eq!(
        positions.len(),
        4,
        "the open transaction's row is not visible yet"
    );

    // While the slow transaction is open, the feed holds back everything after it.
    let (held, held_after) = follow(&app, after, 100).await;
    assert!(held.is_empty(), "served past an open transaction: {held:?}");
    assert_eq!(held_after, after);

    open.commit().await.expect("commit late");
    let (events, _) = follow(&app, after, 100).await;
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["slow", "later-0", "later-1", "later-2"]);
    let slow_position = events[0]["position"].as_i64().unwrap();
    assert!(
        events[1..].iter().all(|e| e["position"].as_i64().unwrap() > slow_position),
        "the slow event took its position first, so a naive `position > last` reader would have skipped it"
    );
}
