//! What does scheduling notifications add to recording an event? Two ledgers in one
//! run, one with `--notify-config` and one without, record the same flapping devices
//! (every alarm opens an episode and schedules its first message, every recovery closes
//! it and schedules the resolved one). Prints the cost per event on each and the ratio.
//! Nothing is delivered: the dispatcher runs only under `serve`.
//!
//! `cargo bench --bench notify_overhead` (SQLite; set BENCH_DATABASE_URL=postgres://…
//! to an existing server to also run on two fresh PostgreSQL databases).

use std::time::Instant;

use alert_ledger::config::LedgerArgs;
use alert_ledger::domain::{Kind, NewEvent};
use alert_ledger::http::AppState;
use alert_ledger::server;
use chrono::{Duration, Utc};

const DEVICES: usize = 200;
const FLAPS: usize = 5;

const CONFIG: &str = r#"
[[receivers]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[default_route]
receiver = "ops"
group_wait = "1h"
repeat_interval = "4h"
"#;

fn event(device: usize, n: usize) -> NewEvent {
    NewEvent {
        event_id: format!("d{device}-{n}"),
        device_id: format!("device-{device}"),
        alert_key: "offline".to_string(),
        kind: if n.is_multiple_of(2) {
            Kind::Alarm
        } else {
            Kind::Recovery
        },
        // Recent, so that history_cutoff does not skip the episodes.
        occurred_at: Some(Utc::now() - Duration::minutes(30) + Duration::seconds(n as i64)),
        severity: None,
        summary: None,
        labels: Default::default(),
        payload: None,
        source: None,
        resolves: None,
    }
}

async fn open(url: &str, config: Option<&std::path::Path>) -> AppState {
    let mut args = LedgerArgs::with_database_url(url);
    args.notify_config = config.map(std::path::Path::to_path_buf);
    server::open(&args).await.expect("open ledger")
}

async fn run(engine: &str, plain: AppState, notifying: AppState) {
    // Alternate the two ledgers event by event so that noise hits both alike.
    let mut spent = [0.0f64; 2];
    for n in 0..FLAPS * 2 {
        for device in 0..DEVICES {
            for (i, state) in [&plain, &notifying].into_iter().enumerate() {
                let started = Instant::now();
                state
                    .ledger
                    .record(vec![event(device, n)])
                    .await
                    .expect("record");
                spent[i] += started.elapsed().as_secs_f64();
            }
        }
    }
    let events = (DEVICES * FLAPS * 2) as f64;
    let scheduled: i64 = alert_ledger::with_pool!(&notifying.db, pool =>
        sqlx::query_scalar("SELECT COUNT(*) FROM notifications").fetch_one(pool).await)
    .expect("count");
    println!(
        "{engine:<8} {events} events each: without notifications {:.3} ms/event, \
         with {:.3} ms/event ({scheduled} messages scheduled), ratio {:.2}x",
        spent[0] / events * 1000.0,
        spent[1] / events * 1000.0,
        spent[1] / spent[0]
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("notify.toml");
    std::fs::write(&config, CONFIG).expect("write config");
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    run(
        "sqlite",
        open(&url("plain.db"), None).await,
        open(&url("notifying.db"), Some(&config)).await,
    )
    .await;
    if let Ok(admin) = std::env::var("BENCH_DATABASE_URL") {
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base.to_string())
            .expect("BENCH_DATABASE_URL has a database path");
        let mut urls = Vec::new();
        for suffix in ["plain", "notifying"] {
            let name = format!("notify_bench_{suffix}_{}", uuid::Uuid::now_v7().simple());
            let mut admin_conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connect");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin_conn)
                .await
                .expect("create database");
            urls.push(format!("{base}/{name}"));
        }
        run(
            "postgres",
            open(&urls[0], None).await,
            open(&urls[1], Some(&config)).await,
        )
        .await;
    }
}
