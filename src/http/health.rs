//! `/healthz` (the process is up), `/readyz` (the database answers) and `/metrics`
//! (this process's counters in Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => Ok(Json(
            json!({ "status": "ready", "database": state.db.engine() }),
        )),
        Ok(Err(error)) => Err(ApiError::Unavailable(error.to_string())),
        Err(_) => Err(ApiError::Unavailable("database ping timed out".into())),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let c = &state.ledger.counters;
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let body = format!(
        "# HELP alert_ledger_events_total Submitted events by outcome since start.\n\
         # TYPE alert_ledger_events_total counter\n\
         alert_ledger_events_total{{outcome=\"recorded\"}} {}\n\
         alert_ledger_events_total{{outcome=\"duplicate\"}} {}\n\
         alert_ledger_events_total{{outcome=\"conflict\"}} {}\n\
         # HELP alert_ledger_append_retries_total Stream version conflicts retried.\n\
         # TYPE alert_ledger_append_retries_total counter\n\
         alert_ledger_append_retries_total {}\n\
         # HELP alert_ledger_append_exhausted_total Appends answered 503 after every retry.\n\
         # TYPE alert_ledger_append_exhausted_total counter\n\
         alert_ledger_append_exhausted_total {}\n\
         # HELP alert_ledger_integration_invalid_total Alertmanager alerts and PagerDuty events refused as invalid.\n\
         # TYPE alert_ledger_integration_invalid_total counter\n\
         alert_ledger_integration_invalid_total{{integration=\"alertmanager\"}} {}\n\
         alert_ledger_integration_invalid_total{{integration=\"pagerduty\"}} {}\n",
        read(&c.recorded),
        read(&c.duplicates),
        read(&c.conflicts),
        read(&c.conflict_retries),
        read(&c.contended),
        read(&c.invalid_alertmanager),
        read(&c.invalid_pagerduty),
    );
    let mut body = body;
    if let Some(dispatcher) = &state.dispatcher {
        let d = &dispatcher.counters;
        body.push_str(&format!(
            "# HELP alert_ledger_notifications_total Notification outcomes of this process's dispatcher since start (retried counts failed attempts that will be retried).\n\
             # TYPE alert_ledger_notifications_total counter\n\
             alert_ledger_notifications_total{{outcome=\"delivered\"}} {}\n\
             alert_ledger_notifications_total{{outcome=\"retried\"}} {}\n\
             alert_ledger_notifications_total{{outcome=\"dead\"}} {}\n\
             alert_ledger_notifications_total{{outcome=\"suppressed\"}} {}\n",
            read(&d.delivered),
            read(&d.retried),
            read(&d.dead),
            read(&d.suppressed),
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
