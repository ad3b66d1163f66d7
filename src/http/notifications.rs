//! `GET /v1/notifications`: the delivery log — every message, its attempts, response
//! codes, next retry and final state.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::params::{decode_cursor, encode_cursor, limit, parse_query, path_name};
use super::AppState;
use crate::domain::events::stored_time;
use crate::error::{ApiError, FieldError};
use crate::notifications::outbox::{LogFilter, Outbox};
use crate::notifications::plan::DeliveryStatus;
use crate::with_pool;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/notifications", get(delivery_log))
}

async fn delivery_log(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = parse_query(
        query.as_deref(),
        &["device_id", "alert_key", "status", "limit", "cursor"],
    )?;
    let limit = limit(&params)?;
    let mut errors = Vec::new();
    for name in ["device_id", "alert_key"] {
        if let Some(value) = params.get(name) {
            if let Err(ApiError::InvalidPath(mut bad)) = path_name(name, value) {
                errors.append(&mut bad);
            }
        }
    }
    let status = match params.get("status") {
        None => None,
        Some(text) => match DeliveryStatus::parse(text) {
            Some(status) => Some(status),
            None => {
                errors.push(FieldError::new(
                    "status",
                    "must be pending, delivering, delivered, suppressed or dead",
                ));
                None
            }
        },
    };
    let after = match params.get("cursor") {
        None => None,
        Some(cursor) => match decode_cursor(cursor, 2) {
            Ok(parts) => match DateTime::parse_from_rfc3339(&parts[0]) {
                Ok(at) => Some((at.with_timezone(&Utc), parts[1].clone())),
                Err(_) => {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this API returned",
                    ));
                    None
                }
            },
            Err(ApiError::InvalidQuery(mut bad)) => {
                errors.append(&mut bad);
                None
            }
            Err(other) => return Err(other),
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::InvalidQuery(errors));
    }
    let filter = LogFilter {
        device_id: params.get("device_id").cloned(),
        alert_key: params.get("alert_key").cloned(),
        status,
        after,
        limit,
    };
    let rows = with_pool!(&state.db, pool => pool.delivery_log(&filter).await)?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|last| encode_cursor(&[&stored_time::format(&last.created_at), &last.id]));
    Ok(Json(
        json!({ "notifications": rows, "next_cursor": next_cursor }),
    ))
}
