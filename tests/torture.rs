//! The concurrency torture test (issue 3): thousands of devices, shuffled events, exact
//! duplicates and same-device concurrency from 64 clients — against one in-process
//! server on each engine, and against three real `serve` processes on one PostgreSQL
//! database. Afterwards every invariant is checked through the public API.
//!
//! Sized by `TORTURE_DEVICES` × `TORTURE_EVENTS` (defaults 500 × 20, so the suite stays
//! within a few minutes in a debug build on two cores; the full size is
//! `TORTURE_DEVICES=2000`, see docs/benchmarks.md). Each client takes the next 1–8
//! submissions from the shuffled queue and posts them singly or as one batch.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_ledger::domain::fold::fold;
use alert_ledger::domain::{FoldConfig, Kind, RecordedEvent, Severity};
use chrono::{DateTime, Utc};
use common::{fresh_database, spawn_app, start_servers, Engine};
use futures::StreamExt;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

const CLIENTS: usize = 64;

/// 503 answers the clients retried, across all runs in this process.
static UNAVAILABLE: AtomicUsize = AtomicUsize::new(0);

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The submissions: each device's events, 10% of them twice, shuffled, with some
/// same-device events placed side by side so they travel concurrently.
fn workload(devices: usize, per_device: usize) -> (Vec<Value>, usize) {
    let mut rng = rand::thread_rng();
    let mut submissions = Vec::new();
    for d in 0..devices {
        for e in 0..per_device {
            let minute = rng.gen_range(0..600);
            let kind = if rng.gen_bool(0.5) {
                "alarm"
            } else {
                "recovery"
            };
            let mut event = json!({
                "event_id": format!("t{d}-{e}"),
                "device_id": format!("torture-{d:05}"),
                "alert_key": if e % 4 == 0 { "temperature" } else { "offline" },
                "kind": kind,
                "occurred_at": format!("2026-11-20T{:02}:{:02}:00Z", minute / 60, minute % 60),
            });
            if kind == "alarm" {
                event["severity"] = json!(["critical", "major", "minor"][rng.gen_range(0..3)]);
            }
            submissions.push(event);
        }
    }
    let distinct = submissions.len();
    let copies: Vec<Value> = submissions
        .choose_multiple(&mut rng, distinct / 10)
        .cloned()
        .collect();
    submissions.extend(copies);
    submissions.shuffle(&mut rng);
    // Pull some same-device events next to each other.
    for i in (0..submissions.len().saturating_sub(1)).step_by(37) {
        let device = submissions[i]["device_id"].clone();
        if let Some(j) = (i + 2..submissions.len()).find(|j| submissions[*j]["device_id"] == device)
        {
            submissions.swap(i + 1, j);
        }
    }
    (submissions, distinct)
}

async fn submit(targets: &[String], submissions: Vec<Value>) -> Duration {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let queue = Arc::new(submissions);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..CLIENTS).map(|worker| {
        let (queue, next, client) = (queue.clone(), next.clone(), client.clone());
        let target = targets[worker % targets.len()].clone();
        tokio::spawn(async move {
            loop {
                let take = rand::thread_rng().gen_range(1..=8);
                let start = next.fetch_add(take, Ordering::Relaxed);
                if start >= queue.len() {
                    return;
                }
                let chunk = &queue[start..(start + take).min(queue.len())];
                let body = if chunk.len() == 1 {
                    chunk[0].clone()
                } else {
                    json!(chunk)
                };
                // A sender's contract: 503 means "retry after Retry-After", and resending
                // is safe because every event carries its id.
                let mut attempts = 0;
                let (status, answer) = loop {
                    let response = client
                        .post(format!("{target}/v1/events"))
                        .json(&body)
                        .send()
                        .await
                        .expect("post");
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.expect("json answer");
                    let unavailable = status == 503
                        || answer["items"]
                            .as_array()
                            .is_some_and(|items| items.iter().any(|i| i["status"] == 503));
                    attempts += 1;
                    if !unavailable || attempts == 20 {
                        break (status, answer);
                    }
                    UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                };
                if chunk.len() == 1 {
                    assert!(status == 201 || status == 200, "status {status}: {answer}");
                } else {
                    assert_eq!(status, 200, "{answer}");
                    let items = answer["items"].as_array().expect("items");
                    assert!(
                        items
                            .iter()
                            .all(|i| i["status"] == 201 || i["status"] == 200),
                        "{answer}"
                    );
                }
            }
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker.expect("client task");
    }
    started.elapsed()
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn recorded_event(json: &Value) -> RecordedEvent {
    RecordedEvent {
        event_id: json["event_id"].as_str().expect("id").to_string(),
        kind: if json["kind"] == "alarm" {
            Kind::Alarm
        } else {
            Kind::Recovery
        },
        alert_key: json["alert_key"].as_str().expect("key").to_string(),
        occurred_at: (json["occurred_at_given"] == true).then(|| time(&json["occurred_at"])),
        recorded_at: time(&json["recorded_at"]),
        severity: json["severity"].as_str().and_then(Severity::parse),
        summary: json["summary"].as_str().map(str::to_string),
        labels: BTreeMap::new(),
        payload: None,
        source: None,
        resolves: json["resolves"].as_str().map(str::to_string),
    }
}

/// Check every invariant of one device through the API.
async fn check_device(
    client: &reqwest::Client,
    target: &str,
    device: String,
    expected: BTreeSet<String>,
) {
    let trail: Value = client
        .get(format!("{target}/v1/devices/{device}/events?limit=1000"))
        .send()
        .await
        .expect("trail")
        .json()
        .await
        .expect("json");
    let events = trail["events"].as_array().expect("events");
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids, expected,
        "{device}: the trail must hold every distinct event once"
    );
    assert_eq!(
        ids.len(),
        events.len(),
        "{device}: an event is recorded twice"
    );
    let versions: Vec<i64> = events
        .iter()
        .map(|e| e["stream_version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "{device}: version gap"
    );

    let mut by_alert: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    for event in events {
        let event = recorded_event(event);
        by_alert
            .entry(event.alert_key.clone())
            .or_default()
            .push(event);
    }
    for (alert_key, events) in by_alert {
        let folded = fold(&events, &FoldConfig::default());
        let alert: Value = client
            .get(format!("{target}/v1/devices/{device}/alerts/{alert_key}"))
            .send()
            .await
            .expect("alert")
            .json()
            .await
            .expect("json");
        let context = format!("{device}/{alert_key}");
        assert_eq!(alert["status"], folded.state.status.as_str(), "{context}");
        assert_eq!(
            alert["episode_count"], folded.state.episode_count,
            "{context}"
        );
        assert_eq!(
            alert["stray_recovery_count"], folded.state.stray_recovery_count,
            "{context}"
        );
        assert_eq!(
            alert["since"].as_str().map(|_| time(&alert["since"])),
            folded.state.since,
            "{context}"
        );
        assert_eq!(
            alert["severity"].as_str(),
            folded.state.severity.map(|s| s.as_str()),
            "{context}"
        );
        let episodes = alert["episodes"].as_array().expect("episodes");
        assert_eq!(episodes.len(), folded.episodes.len(), "{context}");
        for (shown, want) in episodes.iter().zip(&folded.episodes) {
            assert_eq!(shown["number"], want.number, "{context}");
            assert_eq!(time(&shown["opened_at"]), want.opened_at, "{context}");
            assert_eq!(
                shown["closed_at"]
                    .as_str()
                    .map(|_| time(&shown["closed_at"])),
                want.closed_at,
                "{context}"
            );
            assert_eq!(shown["alarm_count"], want.alarm_count, "{context}");
            assert_eq!(shown["reconciled"], want.reconciled, "{context}");
        }
    }
}

async fn retries_reported(client: &reqwest::Client, targets: &[String]) -> u64 {
    let mut total = 0;
    for target in targets {
        let text = client
            .get(format!("{target}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("alert_ledger_append_retries_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

async fn torture(label: &str, targets: Vec<String>) {
    let (devices, per_device) = (size("TORTURE_DEVICES", 500), size("TORTURE_EVENTS", 20));
    let (submissions, distinct) = workload(devices, per_device);
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for event in &submissions {
        expected
            .entry(event["device_id"].as_str().unwrap().to_string())
            .or_default()
            .insert(event["event_id"].as_str().unwrap().to_string());
    }
    let sent = submissions.len();
    let elapsed = submit(&targets, submissions).await;

    let client = reqwest::Client::new();
    let retries = retries_reported(&client, &targets).await;
    futures::stream::iter(expected)
        .map(|(device, ids)| {
            let (client, target) = (client.clone(), targets[0].clone());
            async move { check_device(&client, &target, device, ids).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!(
        "torture[{label}]: {devices} devices, {distinct} distinct events, {} duplicates, \
         {sent} submissions from {CLIENTS} clients to {} server(s) in {:.1}s ({:.0}/s), \
         {retries} conflict retries, {} answers 503 retried by clients; every invariant held",
        sent - distinct,
        targets.len(),
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        UNAVAILABLE.load(Ordering::Relaxed),
    );
}

async fn one_server_survives_the_torture(engine: Engine) {
    let Some(app) = spawn_app(engine).await else {
        return;
    };
    torture(
        &format!("{engine:?}, one server"),
        vec![app.address.clone()],
    )
    .await;
}

on_both_engines!(one_server_survives_the_torture);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_server_processes_on_one_postgres_survive_the_torture() {
    let Some((url, _)) = fresh_database(Engine::Postgres).await else {
        return;
    };
    let (_servers, targets) = start_servers(&url, 3).await;
    torture("Postgres, three processes", targets).await;
}
