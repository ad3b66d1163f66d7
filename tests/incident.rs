//! The incident at scale, contention on one stream, restarts and imports.

mod common;

use std::time::Duration;

use alert_ledger::cli::import::import;
use common::{spawn_app, spawn_app_on, Engine};
use rand::Rng;
use serde_json::{json, Value};

const DEVICES: usize = 500;

fn alarm(device: &str) -> Value {
    json!({"event_id": format!("{device}-alarm"), "device_id": device, "alert_key": "offline",
           "kind": "alarm", "occurred_at": "2026-11-20T21:00:00.000Z", "severity": "major",
           "summary": "controller offline (sent five minutes after the drop)"})
}

fn recovery(device: &str) -> Value {
    json!({"event_id": format!("{device}-recovery"), "device_id": device, "alert_key": "offline",
           "kind": "recovery", "occurred_at": "2026-11-20T21:05:00.200Z"})
}

async fn five_hundred_racing_pairs_all_resolve(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..DEVICES {
        let device = format!("room-{i:03}");
        let (first, second) = if rand::thread_rng().gen_bool(0.5) {
            (alarm(&device), recovery(&device))
        } else {
            (recovery(&device), alarm(&device))
        };
        let gap = Duration::from_millis(rand::thread_rng().gen_range(0..=300));
        let (a, b) = (app.clone(), app.clone());
        tasks.push(tokio::spawn(async move { a.post(&first).await.status }));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(gap).await;
            b.post(&second).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 201);
    }
    let resolved = app.all_alerts("resolved").await;
    assert_eq!(resolved.len(), DEVICES);
    assert!(resolved
        .iter()
        .all(|a| a["episode_count"] == 1 && a["stray_recovery_count"] == 0));
    assert!(app.all_alerts("firing").await.is_empty());
    for i in (0..DEVICES).step_by(50) {
        let alert = app.alert(&format!("room-{i:03}"), "offline").await;
        assert_eq!(alert["episodes"].as_array().map(Vec::len), Some(1));
        assert_eq!(alert["episodes"][0]["duration_ms"], 300_200);
    }
}

async fn concurrent_distinct_events_on_one_device_all_land_in_order(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let posts = (0..40).map(|i| {
        let kind = if i % 2 == 0 { "alarm" } else { "recovery" };
        let body = json!({"event_id": format!("e{i:02}"), "device_id": "hot", "kind": kind,
                          "occurred_at": format!("2026-11-20T10:{i:02}:00Z")});
        let app = &app;
        async move { app.post(&body).await }
    });
    let answers = futures::future::join_all(posts).await;
    assert!(answers.iter().all(|a| a.status == 201), "a post failed");
    let mut versions: Vec<i64> = answers
        .iter()
        .map(|a| a.body["stream_version"].as_i64().expect("version"))
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=40).collect::<Vec<_>>());
    let trail = app.trail("hot").await;
    let trail_versions: Vec<i64> = trail
        .iter()
        .map(|e| e["stream_version"].as_i64().unwrap())
        .collect();
    assert_eq!(trail_versions, (1..=40).collect::<Vec<_>>());
    let alert = app.alert("hot", "default").await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["episode_count"], 20);
}

async fn a_restart_keeps_every_event_and_the_same_states(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let batch: Vec<Value> = (0..30)
        .flat_map(|i| {
            let device = format!("dev-{i}");
            if i % 3 == 0 {
                vec![alarm(&device)]
            } else {
                vec![recovery(&device), alarm(&device)]
            }
        })
        .collect();
    let answer = app.post(&json!(batch)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["recorded"], 50);
    let firing = app.all_alerts("firing").await;
    let resolved = app.all_alerts("resolved").await;
    let trail = app.trail("dev-1").await;
    assert_eq!((firing.len(), resolved.len()), (10, 20));

    let url = app.database_url.clone();
    let dir = app.stop().await;
    let again = spawn_app_on(&url).await;
    assert_eq!(again.all_alerts("firing").await, firing);
    assert_eq!(again.all_alerts("resolved").await, resolved);
    assert_eq!(again.trail("dev-1").await, trail);
    drop(dir);
}

async fn pages_follow_cursors_without_gaps_or_repeats(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let batch: Vec<Value> = (0..7)
        .map(|i| json!({"event_id": format!("p{i}"), "device_id": format!("pg-{i}"), "kind": "alarm"}))
        .chain((0..5).map(|i| json!({"event_id": format!("t{i}"), "device_id": "pg-0", "kind": "recovery",
                                     "alert_key": if i % 2 == 0 { "a" } else { "b" }})))
        .collect();
    assert_eq!(app.post(&json!(batch)).await.status, 200);
    let mut seen = Vec::new();
    let mut path = "/v1/alerts?status=firing&limit=3".to_string();
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, 200);
        seen.extend(
            page.body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["device_id"].clone()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/alerts?status=firing&limit=3&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<Value> = (0..7).map(|i| json!(format!("pg-{i}"))).collect();
    assert_eq!(seen, expected);
    let only_a = app.get("/v1/devices/pg-0/events?alert_key=a&limit=2").await;
    let ids: Vec<&str> = only_a.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["t0", "t2"]);
    let cursor = only_a.body["next_cursor"].as_str().expect("a next page");
    let rest = app
        .get(&format!(
            "/v1/devices/pg-0/events?alert_key=a&limit=2&cursor={cursor}"
        ))
        .await;
    let ids: Vec<&str> = rest.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["t4"]);
}

async fn import_records_good_lines_and_names_refused_ones(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("events.ndjson");
    let lines = [
        alarm("imp-1").to_string(),
        "{not json".to_string(),
        recovery("imp-1").to_string(),
        String::new(),
        alarm("imp-1").to_string(),
        json!({"device_id": "imp-2", "kind": "alarm", "occured_at": "2026-11-20T10:00:00Z"})
            .to_string(),
        json!({"event_id": "imp-1-alarm", "device_id": "imp-1", "kind": "recovery"}).to_string(),
    ];
    // A byte-order mark before line 1 is not part of it.
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(lines.join("\n").as_bytes());
    // Line 8 holds a Latin-1 byte; the lines after it still count (line 9 uses CRLF).
    bytes.extend_from_slice(
        b"\n{\"device_id\":\"m1\",\"event_id\":\"lat\xe9\",\"kind\":\"alarm\"}\n",
    );
    bytes.extend_from_slice(alarm("imp-3").to_string().as_bytes());
    bytes.extend_from_slice(b"\r\n");
    // Line 10 is longer than the API's body limit: refused without being held whole.
    bytes.extend_from_slice(&vec![b'x'; alert_ledger::cli::import::MAX_LINE_BYTES + 10]);
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(alarm("imp-4").to_string().as_bytes());
    std::fs::write(&file, bytes).expect("write");
    let summary = import(&app.state.ledger, &file, 2).await.expect("import");
    assert_eq!(summary.recorded, 4);
    assert_eq!(summary.duplicates, 1);
    let refused: Vec<u64> = summary.refused.iter().map(|(line, _)| *line).collect();
    assert_eq!(refused, vec![2, 6, 7, 8, 10]);
    assert_eq!(
        summary.refused[4].1,
        "longer than 1048576 bytes (the API's body limit)"
    );
    assert_eq!(app.trail("imp-4").await.len(), 1);
    assert!(
        summary.refused[1].1.contains("occured_at: unknown field"),
        "{:?}",
        summary.refused
    );
    assert_eq!(
        summary.refused[3].1,
        "not valid UTF-8 (the first bad byte is at byte 34 of the line)"
    );
    assert_eq!(app.trail("imp-3").await.len(), 1);
    assert_eq!(app.trail("imp-1").await.len(), 2);
    assert_eq!(app.alert("imp-1", "offline").await["status"], "resolved");
}

on_both_engines!(
    five_hundred_racing_pairs_all_resolve,
    concurrent_distinct_events_on_one_device_all_land_in_order,
    a_restart_keeps_every_event_and_the_same_states,
    pages_follow_cursors_without_gaps_or_repeats,
    import_records_good_lines_and_names_refused_ones,
);
