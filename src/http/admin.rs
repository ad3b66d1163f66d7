//! `POST /v1/admin/rebuild` starts the same rebuild as `alert-ledger rebuild` in the
//! background; `GET /v1/admin/rebuild` reports its progress and last result.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::params::parse_query;
use super::AppState;
use crate::error::ApiError;
use crate::projections::rebuild::{rebuild, Progress};

/// The rebuild this process runs, if any, and how the last one ended.
#[derive(Default)]
pub struct RebuildStatus {
    running: AtomicBool,
    total: AtomicU64,
    done: AtomicU64,
    last: Mutex<Option<Value>>,
}

impl Progress for RebuildStatus {
    fn start(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }
    fn advance(&self, events: u64) {
        self.done.fetch_add(events, Ordering::Relaxed);
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/rebuild", get(status).post(start))
}

fn report(state: &AppState) -> Value {
    let rebuilds = &state.rebuilds;
    let last = rebuilds.last.lock().map(|l| l.clone()).unwrap_or(None);
    json!({
        "running": rebuilds.running.load(Ordering::Relaxed),
        "events_done": rebuilds.done.load(Ordering::Relaxed),
        "events_total": rebuilds.total.load(Ordering::Relaxed),
        "last": last,
    })
}

async fn status(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    parse_query(query.as_deref(), &[])?;
    Ok(Json(report(&state)))
}

async fn start(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    parse_query(query.as_deref(), &[])?;
    if state.rebuilds.running.swap(true, Ordering::AcqRel) {
        return Err(ApiError::RebuildRunning);
    }
    // The answer describes this rebuild, not the counts the last one ended with.
    state.rebuilds.start(0);
    // Taken before the task starts, so that it cannot show a half-counted log.
    let answer = report(&state);
    let task_state = state.clone();
    let runtime = tokio::runtime::Handle::current();
    // The rebuild's future is not `Send` (sqlx's executor bounds in its batched writes),
    // so it runs to completion on a blocking thread of its own.
    tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            let rebuilds: Arc<RebuildStatus> = task_state.rebuilds.clone();
            let started = Instant::now();
            let outcome = rebuild(&task_state.projector, rebuilds.as_ref()).await;
            let seconds = started.elapsed().as_secs_f64();
            let last = match outcome {
                Ok(done) => json!({
                    "result": "rebuilt",
                    "events": done.events,
                    "devices": done.devices,
                    "seconds": seconds,
                }),
                Err(error) => {
                    tracing::error!(%error, "rebuild failed; the live tables are unchanged");
                    json!({ "result": "failed", "seconds": seconds })
                }
            };
            if let Ok(mut slot) = rebuilds.last.lock() {
                *slot = Some(last);
            }
            rebuilds.running.store(false, Ordering::Release);
        })
    });
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
