//! Rebuild throughput: a 1,000,000-event log (10,000 devices × 100 events, two alert
//! keys, alternating alarm/recovery) is written straight into the event store, then
//! `rebuild` and `verify` are timed. Prints events per second for each.
//!
//! `cargo bench --bench rebuild` (SQLite; set BENCH_DATABASE_URL=postgres://…/empty_db to
//! also run on PostgreSQL). BENCH_EVENTS changes the size (default 1,000,000).

use std::time::Instant;

use alert_ledger::config::LedgerArgs;
use alert_ledger::domain::events::stored_time;
use alert_ledger::projections::rebuild::{rebuild, verify, Progress};
use alert_ledger::server;
use alert_ledger::store::Db;
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

const EVENTS_PER_DEVICE: usize = 100;
const ROWS_PER_INSERT: usize = 500;

struct Quiet;

impl Progress for Quiet {
    fn start(&self, _total: u64) {}
    fn advance(&self, _events: u64) {}
}

async fn seed(db: &Db, events: usize) {
    let base = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("base");
    let recorded = stored_time::format(&base);
    let devices = events / EVENTS_PER_DEVICE;
    let rows: Vec<(String, i64, &'static str, serde_json::Value)> = (0..devices)
        .flat_map(|d| {
            let recorded = recorded.clone();
            (0..EVENTS_PER_DEVICE).map(move |n| {
                let kind = if n % 2 == 0 { "alarm" } else { "recovery" };
                let key = if n % 4 < 2 { "offline" } else { "temperature" };
                let occurred = stored_time::format(&(base + Duration::seconds((n * 60) as i64)));
                let payload = json!({"type": "recorded", "event_id": format!("e{d}-{n}"), "kind": kind,
                    "alert_key": key, "occurred_at": occurred, "recorded_at": recorded,
                    "severity": "major"});
                (format!("device-{d:05}"), (n + 1) as i64, kind, payload)
            })
        })
        .collect();
    alert_ledger::with_pool!(db, pool => {
        let mut tx = pool.begin().await.expect("begin");
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("('device', ${}, ${}, ${}, '1', ${}, '{{}}')", i * 4 + 1, i * 4 + 2, i * 4 + 3, i * 4 + 4))
                .collect();
            let sql = format!(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) VALUES {}",
                values.join(",")
            );
            let mut query = sqlx::query(&sql);
            for (device, sequence, kind, payload) in chunk {
                query = query.bind(device.as_str()).bind(*sequence).bind(*kind).bind(payload);
            }
            query.execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
        sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
    });
}

async fn run(url: &str, events: usize) {
    let state = server::open(&LedgerArgs::with_database_url(url))
        .await
        .expect("open");
    let engine = state.db.engine();
    let started = Instant::now();
    seed(&state.db, events).await;
    println!(
        "{engine:<8} seeded {events} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let report = rebuild(&state.projector, &Quiet).await.expect("rebuild");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{engine:<8} rebuild: {} events of {} devices in {seconds:.1}s = {:.0} events/s",
        report.events,
        report.devices,
        report.events as f64 / seconds
    );
    let started = Instant::now();
    let verified = verify(&state.projector, &Quiet, 5).await.expect("verify");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{engine:<8} verify:  {} events in {seconds:.1}s = {:.0} events/s, {} devices differ",
        verified.events,
        verified.events as f64 / seconds,
        verified.devices_with_differences
    );
    state.db.close().await;
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter("alert_ledger=info")
        .init();
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    run(
        &format!("sqlite://{}", dir.path().join("rebuild.db").display()),
        events,
    )
    .await;
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        run(&url, events).await;
    }
}
