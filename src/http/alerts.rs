//! Alert reads: one alert with its episodes, a device's alerts, and alerts across
//! devices filtered by status.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::params::{decode_cursor, encode_cursor, limit, parse_query, path_name, path_segments};
use super::AppState;
use crate::error::{ApiError, FieldError};
use crate::projections::ReadModels;
use crate::with_pool;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/alerts", get(alerts))
        .route("/v1/devices/{device_id}/alerts", get(device_alerts))
        .route("/v1/devices/{device_id}/alerts/{alert_key}", get(alert))
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
