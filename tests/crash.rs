//! Crash safety and rebuilds: a real server process killed between recording events and
//! projecting them loses nothing and its projections catch up on restart; `verify`
//! catches a corrupted row; `rebuild` restores it, also while writes continue.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{fresh_database, spawn_app, start_servers, start_servers_with, Engine};
use serde_json::{json, Value};

fn cli(args: &[&str], database_url: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_alert-ledger"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run alert-ledger");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn events(prefix: &str, devices: usize) -> Value {
    json!((0..devices)
        .flat_map(|d| {
            let device = format!("crash-{d}");
            vec![
                json!({"event_id": format!("{prefix}-{d}-r"), "device_id": device, "kind": "recovery",
                       "occurred_at": "2026-11-20T10:05:00Z"}),
                json!({"event_id": format!("{prefix}-{d}-a"), "device_id": device, "kind": "alarm",
                       "occurred_at": "2026-11-20T10:00:00Z"}),
            ]
        })
        .collect::<Vec<_>>())
}

async fn a_kill_between_append_and_projection_loses_nothing(engine: Engine) {
    let Some((url, _dir)) = fresh_database(engine).await else {
        return;
    };
    let client = reqwest::Client::new();
    let (mut servers, targets) = start_servers_with(
        &url,
        1,
        &[("ALERT_LEDGER_FAULT_PAUSE_BEFORE_PROJECTION_MS", "2000")],
    )
    .await;
    let acknowledged = client
        .post(format!("{}/v1/events", targets[0]))
        .json(&events("acked", 5))
        .send()
        .await
        .expect("post");
    assert_eq!(acknowledged.status().as_u16(), 200);

    // This batch commits, then pauses before projecting: kill it there.
    let in_flight = {
        let client = client.clone();
        let target = targets[0].clone();
        tokio::spawn(async move {
            client
                .post(format!("{target}/v1/events"))
                .json(&events("unacked", 5))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut child = servers.0.remove(0);
    child.kill().expect("SIGKILL the server");
    child.wait().expect("reap");
    let answered = in_flight.await.expect("task");
    assert!(
        answered.is_err(),
        "the in-flight request must not be answered: {answered:?}"
    );

    let (_servers, targets) = start_servers(&url, 1).await;
    let trail: Value = client
        .get(format!("{}/v1/devices/crash-0/events", targets[0]))
        .send()
        .await
        .expect("trail")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"acked-0-r") && ids.contains(&"acked-0-a"),
        "acknowledged events kept: {ids:?}"
    );
    assert_eq!(
        ids.len(),
        4,
        "the committed but unacknowledged events are in the log too: {ids:?}"
    );
    let alert: Value = client
        .get(format!("{}/v1/devices/crash-0/alerts/default", targets[0]))
        .send()
        .await
        .expect("alert")
        .json()
        .await
        .expect("json");
    assert_eq!(
        alert["recovery_count"], 2,
        "the restart caught the projection up: {alert}"
    );
    let (code, output) = cli(&["verify"], &url);
    assert_eq!(code, 0, "verify after restart: {output}");
}

async fn verify_catches_a_corrupted_row_and_rebuild_repairs_it(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    assert_eq!(app.post(&events("v", 20)).await.status, 200);
    let (code, output) = cli(&["verify"], &app.database_url);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("verified 40 events of 20 devices: 0 devices differ"),
        "{output}"
    );

    alert_ledger::with_pool!(&app.state.db, pool => sqlx::query(
        "UPDATE alert_state SET status = 'firing' WHERE device_id = 'crash-7'"
    ).execute(pool).await.map(|_| ()))
    .expect("corrupt a row");
    let (code, output) = cli(&["verify"], &app.database_url);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("alert crash-7/default: status: live \"firing\", log \"resolved\""),
        "{output}"
    );
    assert!(output.contains("1 devices differ"), "{output}");

    let (code, output) = cli(&["rebuild"], &app.database_url);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("from 40 events of 20 devices"), "{output}");
    // The running server answers from the rebuilt tables.
    assert_eq!(app.alert("crash-7", "default").await["status"], "resolved");
    let (code, output) = cli(&["verify"], &app.database_url);
    assert_eq!(code, 0, "{output}");
}

async fn a_rebuild_while_events_arrive_misses_none(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    assert_eq!(app.post(&events("before", 200)).await.status, 200);
    let url = app.database_url.clone();
    let rebuild = tokio::task::spawn_blocking(move || cli(&["rebuild"], &url));
    for i in 0..40 {
        let body = json!({"event_id": format!("during-{i}"), "device_id": format!("crash-{}", i % 7),
                          "kind": "alarm", "occurred_at": "2026-11-20T11:00:00Z"});
        let status = app.post(&body).await.status;
        assert_eq!(status, 201);
    }
    let (code, output) = rebuild.await.expect("rebuild task");
    assert_eq!(code, 0, "{output}");
    for i in 0..7 {
        let body = json!({"event_id": format!("after-{i}"), "device_id": format!("crash-{i}"),
                          "kind": "recovery", "occurred_at": "2026-11-20T12:00:00Z"});
        assert_eq!(app.post(&body).await.status, 201);
    }
    let (code, output) = cli(&["verify"], &app.database_url);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("verified 447 events of 200 devices"),
        "{output}"
    );
}

async fn the_admin_endpoint_rebuilds_in_the_background(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    assert_eq!(app.post(&events("admin", 30)).await.status, 200);
    let started = app
        .client
        .post(format!("{}/v1/admin/rebuild", app.address))
        .send()
        .await
        .expect("post");
    assert_eq!(started.status().as_u16(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = app.get("/v1/admin/rebuild").await.body;
        if status["running"] == false && !status["last"].is_null() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rebuild did not finish: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["last"]["result"], "rebuilt", "{status}");
    assert_eq!(status["last"]["events"], 60);
    assert_eq!(status["events_done"], 60);
    // A second rebuild's answer describes it, not the counts the first one ended with.
    let second = app
        .request(reqwest::Method::POST, "/v1/admin/rebuild", None, None)
        .await;
    assert_eq!(second.status, 202, "{}", second.body);
    assert_eq!(second.body["running"], true);
    assert_eq!(second.body["events_done"], 0, "{}", second.body);
    assert_eq!(second.body["events_total"], 0, "{}", second.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while app.get("/v1/admin/rebuild").await.body["running"] == true {
        assert!(std::time::Instant::now() < deadline, "second rebuild hangs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, output) = cli(&["verify"], &app.database_url);
    assert_eq!(code, 0, "{output}");
}

async fn a_projection_version_change_rebuilds_at_start(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    assert_eq!(app.post(&events("bump", 10)).await.status, 200);
    alert_ledger::with_pool!(&app.state.db, pool => sqlx::query(
        "UPDATE projection_versions SET version = 0 WHERE name = 'ledger'"
    ).execute(pool).await.map(|_| ()))
    .expect("pretend an older version");
    alert_ledger::with_pool!(&app.state.db, pool => sqlx::query(
        "UPDATE alert_state SET status = 'firing'"
    ).execute(pool).await.map(|_| ()))
    .expect("rows the old logic wrote");
    let url = app.database_url.clone();
    let again = common::spawn_app_on(&url).await;
    assert_eq!(
        again.alert("crash-3", "default").await["status"],
        "resolved"
    );
    let version: i64 = alert_ledger::with_pool!(&again.state.db, pool => sqlx::query_scalar(
        "SELECT version FROM projection_versions WHERE name = 'ledger'"
    ).fetch_one(pool).await)
    .expect("version");
    assert_eq!(version, alert_ledger::projections::PROJECTION_VERSION);
    let (code, output) = cli(&["verify"], &url);
    assert_eq!(code, 0, "{output}");
}

on_both_engines!(
    a_projection_version_change_rebuilds_at_start,
    the_admin_endpoint_rebuilds_in_the_background,
    a_kill_between_append_and_projection_loses_nothing,
    verify_catches_a_corrupted_row_and_rebuild_repairs_it,
    a_rebuild_while_events_arrive_misses_none,
);
