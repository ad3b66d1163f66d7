//! Senders that speak another tool's format: `POST /v1/integrations/alertmanager`
//! (Alertmanager's webhook) and `POST /v1/integrations/pagerduty/enqueue` (PagerDuty
//! Events API v2). The mappings live in [`crate::integrations`]; this module records
//! what they produce through the one ledger path and answers in the sender's terms.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use super::alerts::acknowledge_alert;
use super::events::json_body;
use super::params::parse_query;
use super::AppState;
use crate::domain::{Kind, NewEvent, RecordedEvent};
use crate::error::{ApiError, FieldError};
use crate::integrations::alertmanager::map_notification;
use crate::integrations::pagerduty::{self, Action, PagerDutyEvent};
use crate::ledger::{ItemResult, Outcome};
use crate::projections::lookup::AlertLookup;
use crate::projections::ReadModels;
use crate::store::{EventLog, TrailFilter};
use crate::submission::AcknowledgementRequest;
use crate::with_pool;

/// Where a PagerDuty `resolve` without `payload.source` is recorded when its dedup key
/// has never been seen: kept, and adopted by the device whose trigger comes later.
pub const UNKNOWN_SOURCE_DEVICE: &str = "pagerduty:unknown-source";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/integrations/alertmanager", post(alertmanager))
        .route(
            "/v1/integrations/pagerduty/enqueue",
            post(pagerduty_enqueue),
        )
}

/// What happened to one submitted item, in the integrations' answers. A conflict (the
/// derived id recorded with other content) means the sender re-sent the same alert
/// instance with, say, re-rendered annotations: the first content is kept, and the
/// sender must not be told to change anything, so it counts as a duplicate.
fn result_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Recorded => "recorded",
        Outcome::Duplicate | Outcome::Conflict => "duplicate",
    }
}

/// Record the valid alerts of a notification and answer per alert, in order.
///
/// - `200` when at least one alert was recorded or was a duplicate; alerts that could
///   not be mapped are listed with `"result": "invalid"` and their errors, and logged.
/// - `422` (nothing recorded) when no alert of the notification is valid, or the
///   notification itself is not a version 4 payload with alerts.
async fn alertmanager(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    parse_query(query.as_deref(), &[])?;
    let value = json_body(&headers, body)?;
    let invalid_counter = &state.ledger.counters.invalid_alertmanager;
    let mapped = map_notification(&value, &state.alertmanager).map_err(|errors| {
        invalid_counter.fetch_add(1, Ordering::Relaxed);
        ApiError::InvalidEvent(errors)
    })?;
    let invalid_alerts = mapped.iter().filter(|m| m.is_err()).count();
    invalid_counter.fetch_add(invalid_alerts as u64, Ordering::Relaxed);
    let mut events = Vec::new();
    let mut invalid: Vec<FieldError> = Vec::new();
    for result in &mapped {
        match result {
            Ok(event) => events.push(event.clone()),
            Err(errors) => invalid.extend(errors.iter().cloned()),
        }
    }
    if events.is_empty() {
        return Err(ApiError::InvalidEvent(invalid));
    }
    if !invalid.is_empty() {
        let fields: Vec<&str> = invalid.iter().map(|e| e.field.as_str()).collect();
        tracing::warn!(
            invalid_alerts,
            fields = ?fields,
            "Alertmanager notification with alerts that cannot be recorded; the valid ones are"
        );
    }
    let mut results = state.ledger.record(events).await?.into_iter();
    let mut counts = [0usize; 3];
    let mut items = Vec::with_capacity(mapped.len());
    for (index, mapped) in mapped.iter().enumerate() {
        let item = match mapped {
            Err(errors) => {
                counts[2] += 1;
                json!({ "index": index, "result": "invalid", "errors": errors })
            }
            Ok(event) => {
                let result = results
                    .next()
                    .ok_or_else(|| ApiError::Internal("a mapped alert has no result".into()))?;
                counts[usize::from(result.outcome != Outcome::Recorded)] += 1;
                item_json(index, event, &result)
            }
        };
        items.push(item);
    }
    Ok((
        StatusCode::OK,
        Json(json!({
            "recorded": counts[0],
            "duplicates": counts[1],
            "invalid": counts[2],
            "alerts": items,
        })),
    )
        .into_response())
}

fn item_json(index: usize, event: &NewEvent, result: &ItemResult) -> Value {
    let mut item = json!({
        "index": index,
        "result": result_name(result.outcome),
        "event_id": result.event_id,
        "device_id": result.device_id,
        "alert_key": result.alert_key,
        "kind": event.kind,
        "stream_version": result.stream_version,
        "alert_status": result.alert.as_ref().map(|a| a.status.clone()),
    });
    if result.outcome == Outcome::Conflict {
        item["content_differs"] = json!(true);
    }
    item
}

/// PagerDuty's answer to an event it could not take: 400 and every reason.
fn invalid_event(state: &AppState, errors: Vec<String>) -> Response {
    state
        .ledger
        .counters
        .invalid_pagerduty
        .fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": errors,
        })),
    )
        .into_response()
}

/// `POST /v1/integrations/pagerduty/enqueue`: `202` with PagerDuty's body when the event
/// is taken, `400` with PagerDuty's body when it is invalid. Other errors (`413`, `415`,
/// `503`, …) are the API's usual problem documents.
async fn pagerduty_enqueue(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    parse_query(query.as_deref(), &[])?;
    let value = match json_body(&headers, body) {
        Ok(value) => value,
        Err(ApiError::MalformedJson(why)) => {
            return Ok(invalid_event(
                &state,
                vec![format!("the body is not valid JSON: {why}")],
            ))
        }
        Err(other) => return Err(other),
    };
    let event = match pagerduty::parse(&value) {
        Ok(event) => event,
        Err(errors) => return Ok(invalid_event(&state, errors)),
    };
    let outcome = match event.action {
        Action::Trigger => trigger(&state, &event).await?,
        Action::Resolve => resolve(&state, &event).await?,
        Action::Acknowledge => acknowledge(&state, &event).await.map(|()| Ok(()))?,
    };
    if let Err(errors) = outcome {
        return Ok(invalid_event(&state, errors));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "success",
            "message": "Event processed",
            "dedup_key": event.dedup_key,
        })),
    )
        .into_response())
}

/// Record, and log conflicts (a retried event whose content changed: the first stays).
async fn record(state: &AppState, events: Vec<NewEvent>) -> Result<(), ApiError> {
    for result in state.ledger.record(events).await? {
        if result.outcome == Outcome::Conflict {
            tracing::info!(
                event_id = %result.event_id,
                device_id = %result.device_id,
                "PagerDuty event re-sent with other content; the first one is kept"
            );
        }
    }
    Ok(())
}

/// A trigger on device `payload.source`. Resolves recorded earlier for the same dedup
/// key without a source (on [`UNKNOWN_SOURCE_DEVICE`]) are first copied into the
/// device's stream, so a resolve that overtook its trigger still closes the alert.
async fn trigger(
    state: &AppState,
    event: &PagerDutyEvent,
) -> Result<Result<(), Vec<String>>, ApiError> {
    let Some(device) = event.source.clone() else {
        return Ok(Err(vec!["'payload.source' is missing or blank".into()]));
    };
    let alarm = match event.event_for(&device) {
        Ok(alarm) => alarm,
        Err(errors) => return Ok(Err(errors)),
    };
    let adopted = adopt_parked_resolves(state, &device, &event.alert_key).await?;
    if !adopted.is_empty() {
        record(state, adopted).await?;
    }
    record(state, vec![alarm]).await?;
    Ok(Ok(()))
}

/// Copies of the recoveries parked on [`UNKNOWN_SOURCE_DEVICE`] for `alert_key`, for
/// `device`. Each copy is a function of the parked event alone (same id, its time made
/// explicit), so a retried trigger makes the same copies and they are duplicates.
async fn adopt_parked_resolves(
    state: &AppState,
    device: &str,
    alert_key: &str,
) -> Result<Vec<NewEvent>, ApiError> {
    if device == UNKNOWN_SOURCE_DEVICE {
        return Ok(Vec::new());
    }
    let parked = with_pool!(&state.db, pool => pool.alert(UNKNOWN_SOURCE_DEVICE, alert_key).await)?;
    if parked.is_none() {
        return Ok(Vec::new());
    }
    let filter = TrailFilter {
        alert_key: Some(alert_key.to_string()),
        kind: Some(Kind::Recovery),
        ..TrailFilter::default()
    };
    let events =
        with_pool!(&state.db, pool => pool.trail(UNKNOWN_SOURCE_DEVICE, &filter, 0, 1000).await)?;
    Ok(events
        .into_iter()
        .map(|stored| adopted_copy(device, &stored.event))
        .collect())
}

fn adopted_copy(device: &str, parked: &RecordedEvent) -> NewEvent {
    let mut payload = parked.payload.clone().unwrap_or_else(|| json!({}));
    if let Value::Object(map) = &mut payload {
        map.insert(
            "adopted_from".into(),
            json!({ "device_id": UNKNOWN_SOURCE_DEVICE, "event_id": parked.event_id }),
        );
    }
    NewEvent {
        event_id: parked.event_id.clone(),
        device_id: device.to_string(),
        alert_key: parked.alert_key.clone(),
        kind: Kind::Recovery,
        occurred_at: Some(parked.occurred_at.unwrap_or(parked.recorded_at)),
        severity: None,
        summary: parked.summary.clone(),
        labels: parked.labels.clone(),
        payload: Some(payload),
        source: parked.source.clone(),
        resolves: None,
    }
}

/// The devices a resolve applies to: `payload.source` when given; else the devices on
/// which this dedup key's alert is firing; else the one where it was last seen; else
/// (never seen) [`UNKNOWN_SOURCE_DEVICE`], where a later trigger adopts it.
async fn resolve_devices(
    state: &AppState,
    event: &PagerDutyEvent,
) -> Result<Vec<String>, ApiError> {
    if let Some(source) = &event.source {
        return Ok(vec![source.clone()]);
    }
    let known = with_pool!(&state.db, pool => pool.devices_with_alert_key(&event.alert_key).await)?;
    let known: Vec<_> = known
        .into_iter()
        .filter(|a| a.device_id != UNKNOWN_SOURCE_DEVICE)
        .collect();
    let firing: Vec<String> = known
        .iter()
        .filter(|a| a.status == "firing")
        .map(|a| a.device_id.clone())
        .collect();
    if !firing.is_empty() {
        return Ok(firing);
    }
    Ok(match known.iter().max_by_key(|a| a.since) {
        Some(latest) => vec![latest.device_id.clone()],
        None => vec![UNKNOWN_SOURCE_DEVICE.to_string()],
    })
}

async fn resolve(
    state: &AppState,
    event: &PagerDutyEvent,
) -> Result<Result<(), Vec<String>>, ApiError> {
    let mut recoveries = Vec::new();
    for device in resolve_devices(state, event).await? {
        let mut recovery = match event.event_for(&device) {
            Ok(recovery) => recovery,
            Err(errors) => return Ok(Err(errors)),
        };
        // A resolve without a timestamp means "over now". If the sender's clock runs
        // ahead of ours, its trigger's timestamp can lie after our "now", and the
        // resolve would sort before the alarm it was sent to close: it then takes
        // effect at the alert's latest alarm instead (a tie resolves).
        if recovery.occurred_at.is_none() {
            let alert = with_pool!(&state.db, pool => pool.alert(&device, &event.alert_key).await)?;
            if let Some(last_alarm) = alert.and_then(|a| a.last_alarm_at) {
                if last_alarm > Utc::now() {
                    recovery.occurred_at = Some(last_alarm);
                }
            }
        }
        recoveries.push(recovery);
    }
    record(state, recoveries).await?;
    Ok(Ok(()))
}

/// PagerDuty `acknowledge`: acknowledges the alert on every device a resolve would go
/// to (the same rule), through the ledger's own acknowledgement. Like PagerDuty, an
/// acknowledge for an incident that is not open changes nothing and is still `202`.
pub async fn acknowledge(state: &AppState, event: &PagerDutyEvent) -> Result<(), ApiError> {
    let request = AcknowledgementRequest {
        by: "pagerduty".to_string(),
        reason: Some("acknowledged through the PagerDuty Events API".to_string()),
        event_id: None,
    };
    for device_id in resolve_devices(state, event).await? {
        match acknowledge_alert(state, &device_id, &event.alert_key, &request).await {
            Ok(_) | Err(ApiError::NotFound(_) | ApiError::NotFiring(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(())
}
