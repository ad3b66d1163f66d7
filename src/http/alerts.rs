//! Alert reads: one alert with its episodes, a device's alerts, and alerts across
//! devices filtered by status; and acknowledging a firing alert.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::events::{conflict, json_body};
use super::params::{decode_cursor, encode_cursor, limit, parse_query, path_name, path_segments};
use super::AppState;
use crate::error::{ApiError, FieldError};
use crate::ledger::{AckRequest, Acknowledgement, Outcome};
use crate::projections::ReadModels;
use crate::submission::{validate_acknowledgement, AcknowledgementRequest};
use crate::with_pool;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/alerts", get(alerts))
        .route("/v1/devices/{device_id}/alerts", get(device_alerts))
        .route("/v1/devices/{device_id}/alerts/{alert_key}", get(alert))
        .route(
            "/v1/devices/{device_id}/alerts/{alert_key}/ack",
            post(acknowledge),
        )
}

async fn alert(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    parse_query(query.as_deref(), &[])?;
    let (device_id, alert_key) = path_segments(path)?;
    path_name("device_id", &device_id)?;
    path_name("alert_key", &alert_key)?;
    let row = with_pool!(&state.db, pool => pool.alert(&device_id, &alert_key).await)?.ok_or_else(
        || {
            ApiError::NotFound(format!(
                "no alert {alert_key} recorded for device {device_id}"
            ))
        },
    )?;
    let episodes = with_pool!(&state.db, pool => pool.episodes(&device_id, &alert_key).await)?;
    let mut body = json!(row);
    body["episodes"] = json!(episodes);
    Ok(Json(body))
}

async fn device_alerts(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    parse_query(query.as_deref(), &[])?;
    let device_id = path_segments(path)?;
    path_name("device_id", &device_id)?;
    let alerts = with_pool!(&state.db, pool => pool.device_alerts(&device_id).await)?;
    if alerts.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no alerts recorded for device {device_id}"
        )));
    }
    Ok(Json(json!({ "device_id": device_id, "alerts": alerts })))
}

async fn alerts(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = parse_query(query.as_deref(), &["status", "limit", "cursor"])?;
    let limit = limit(&params)?;
    let status = match params.get("status").map(String::as_str) {
        None => None,
        Some(s @ ("firing" | "resolved")) => Some(s),
        Some(_) => {
            return Err(ApiError::InvalidQuery(vec![FieldError::new(
                "status",
                "must be firing or resolved",
            )]))
        }
    };
    let after = match params.get("cursor") {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor, 2)?),
    };
    let after_ref = after.as_ref().map(|a| (a[0].as_str(), a[1].as_str()));
    let page = with_pool!(&state.db, pool => pool.alerts(status, after_ref, limit).await)?;
    let next_cursor = page
        .next
        .as_ref()
        .map(|(device, key)| encode_cursor(&[device, key]));
    Ok(Json(
        json!({ "alerts": page.alerts, "next_cursor": next_cursor }),
    ))
}

/// Record who is on a firing alert. The acknowledgement is an event in the device's
/// stream (audit trail, rebuilds); it stops reminders for the current episode only.
async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    parse_query(query.as_deref(), &[])?;
    let (device_id, alert_key) = path_segments(path)?;
    path_name("device_id", &device_id)?;
    path_name("alert_key", &alert_key)?;
    let value = json_body(&headers, body)?;
    let request = validate_acknowledgement(&value).map_err(ApiError::InvalidEvent)?;

    let acknowledgement = acknowledge_alert(&state, &device_id, &alert_key, &request).await?;
    let (status, result, episode) = match acknowledgement {
        Acknowledgement::Recorded { result, episode } => {
            (StatusCode::CREATED, result, Some(episode))
        }
        Acknowledgement::Duplicate { result, episode } => (StatusCode::OK, result, episode),
        Acknowledgement::AlreadyAcknowledged { episode, existing } => {
            // Record nothing; show who got there first.
            return Ok((
                StatusCode::OK,
                Json(json!({
                    "device_id": device_id,
                    "alert_key": alert_key,
                    "episode": episode,
                    "event_id": existing.event_id,
                    "acknowledged_by": existing.by,
                    "acknowledged_at": existing.at,
                    "reason": existing.reason,
                    "already_acknowledged": true,
                })),
            )
                .into_response());
        }
        // `acknowledge_alert` turns the rest into errors.
        other => {
            return Err(ApiError::Internal(format!(
                "unexpected acknowledgement outcome {other:?}"
            )))
        }
    };
    Ok((
        status,
        Json(json!({
            "device_id": device_id,
            "alert_key": alert_key,
            "episode": episode,
            "event_id": result.event_id,
            "acknowledged_by": request.by,
            "reason": request.reason,
            "stream_version": result.stream_version,
            "duplicate": result.outcome == Outcome::Duplicate,
            "already_acknowledged": false,
            "alert": result.alert,
        })),
    )
        .into_response())
}

/// Acknowledge the alert's current episode through the ledger: 404 when the alert is
/// unknown, 409 when it is not firing (`alert-not-firing`) or the `event_id` is taken by
/// other content. Shared by the ack endpoint and PagerDuty's `acknowledge` action.
pub(super) async fn acknowledge_alert(
    state: &AppState,
    device_id: &str,
    alert_key: &str,
    request: &AcknowledgementRequest,
) -> Result<Acknowledgement, ApiError> {
    let request = AckRequest {
        by: request.by.clone(),
        reason: request.reason.clone(),
        event_id: request.event_id.clone(),
    };
    match state
        .ledger
        .acknowledge(device_id, alert_key, &request)
        .await?
    {
        Acknowledgement::UnknownAlert => Err(ApiError::NotFound(format!(
            "no alert {alert_key} recorded for device {device_id}"
        ))),
        Acknowledgement::NotFiring => Err(ApiError::NotFiring(format!(
            "alert {alert_key} of device {device_id} is not firing; there is nothing to acknowledge"
        ))),
        Acknowledgement::IdTaken(result) => Err(conflict(&result)),
        other => Ok(other),
    }
}
