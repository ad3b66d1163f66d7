//! Does recording one more event cost the same on a fresh device and on one that has
//! flapped for years? Builds device streams of 10 and 100,000 events, then times
//! single-event appends on each, and prints both figures and their ratio.
//!
//! `cargo bench --bench stream_length` (SQLite; set BENCH_DATABASE_URL=postgres://…/db
//! to also run on an empty PostgreSQL database).

use std::time::Instant;

use alert_ledger::config::LedgerArgs;
use alert_ledger::domain::{Device, Kind, NewEvent};
use alert_ledger::server;
use chrono::{Duration, TimeZone, Utc};

const SAMPLES: usize = 300;

fn event(device: &str, n: usize) -> NewEvent {
    let base = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("base time");
    NewEvent {
        event_id: format!("{device}-{n}"),
        device_id: device.to_string(),
        alert_key: "offline".to_string(),
        kind: if n.is_multiple_of(2) {
            Kind::Alarm
        } else {
            Kind::Recovery
        },
        occurred_at: Some(base + Duration::seconds(n as i64 * 60)),
        severity: None,
        summary: None,
        labels: Default::default(),
        payload: None,
        source: None,
        resolves: None,
    }
}

async fn run(url: &str) {
    let state = server::open(&LedgerArgs::with_database_url(url))
        .await
        .expect("open ledger");
    let ledger = &state.ledger;
    // Both devices live in one database, so the comparison is about the length of the
    // stream, not the size of the database; appends alternate between them in slices
    // so that noise on the machine hits both alike.
    let mut next = std::collections::HashMap::new();
    for (device, history) in [("long", 100_000usize), ("short", 10usize)] {
        let started = Instant::now();
        for chunk_start in (0..history).step_by(1000) {
            let chunk = (chunk_start..(chunk_start + 1000).min(history))
                .map(|n| event(device, n))
                .collect();
            ledger.record(chunk).await.expect("seed");
        }
        println!(
            "{:<8} seeded {device:<5} with {history:>6} events in {:.1}s",
            state.db.engine(),
            started.elapsed().as_secs_f64()
        );
        next.insert(device, history);
    }
    // A freshly loaded table has no planner statistics until autovacuum runs;
    // measure the steady state, not the first minute after a bulk load.
    alert_ledger::with_pool!(&state.db, pool => sqlx::query("ANALYZE").execute(pool).await.map(|_| ()))
        .expect("analyze");
    let mut spent = std::collections::HashMap::new();
    for _slice in 0..SAMPLES / 20 {
        for device in ["short", "long"] {
            let started = Instant::now();
            for _ in 0..20 {
                let n = next[device];
                ledger.record(vec![event(device, n)]).await.expect("append");
                next.insert(device, n + 1);
            }
            *spent.entry(device).or_insert(0.0) += started.elapsed().as_secs_f64();
        }
    }
    let per_event = |device: &str| spent[device] * 1000.0 / SAMPLES as f64;
    println!(
        "{:<8} short (10 earlier events):      {:.3} ms per appended event",
        state.db.engine(),
        per_event("short")
    );
    println!(
        "{:<8} long  (100,000 earlier events): {:.3} ms per appended event",
        state.db.engine(),
        per_event("long")
    );
    println!(
        "{:<8} ratio long/short: {:.2}x   (device aggregate in memory: {} bytes whatever the stream length)",
        state.db.engine(),
        per_event("long") / per_event("short"),
        std::mem::size_of::<Device>()
    );
    state.db.close().await;
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    run(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await;
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        run(&url).await;
    }
}
