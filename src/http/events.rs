//! `POST /v1/events` (record one event or a batch) and
//! `GET /v1/devices/{device_id}/events` (the audit trail).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::params::{decode_cursor, encode_cursor, limit, parse_query, path_name, path_segments};
use super::{AppState, MAX_BODY_BYTES};
use crate::domain::fold::effective_time;
use crate::domain::{FoldConfig, Kind, RecordedEvent};
use crate::error::{ApiError, FieldError};
use crate::ledger::{ItemResult, Outcome};
use crate::projections::ReadModels;
use crate::store::log::FeedCursor;
use crate::store::{EventLog, StoredEvent, TimeField, TrailFilter};
use crate::submission::{check_name, parse_json, validate_body, Submission, MAX_NAME_CHARS};
use crate::with_pool;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(record).get(feed))
        .route("/v1/devices/{device_id}/events", get(trail))
        .route(
            "/v1/devices/{device_id}/alerts/{alert_key}/events",
            get(alert_trail),
        )
}

pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// A JSON request body: 413 past the size limit, 415 unless the content type is JSON,
/// 400 when it does not parse (a repeated key included).
pub(super) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::MalformedJson(rejection.body_text())
        }
    })?;
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    parse_json(&body).map_err(ApiError::MalformedJson)
}

async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    parse_query(query.as_deref(), &[])?;
    let value = json_body(&headers, body)?;
    let submission = validate_body(value).map_err(ApiError::InvalidEvent)?;
    match submission {
        Submission::One(event) => {
            let mut results = state.ledger.record(vec![event]).await?;
            let result = results
                .pop()
                .ok_or_else(|| ApiError::Internal("no result for a recorded event".into()))?;
            match result.outcome {
                Outcome::Recorded => {
                    Ok((StatusCode::CREATED, Json(item_json(&result))).into_response())
                }
                Outcome::Duplicate => {
                    Ok((StatusCode::OK, Json(item_json(&result))).into_response())
                }
                Outcome::Conflict => Err(conflict(&result)),
            }
        }
        Submission::Batch(events) => {
            let results = state.ledger.record(events).await?;
            let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
            let items: Vec<Value> = results
                .iter()
                .map(|result| match result.outcome {
                    Outcome::Recorded | Outcome::Duplicate => {
                        let mut item = item_json(result);
                        item["status"] = json!(if result.outcome == Outcome::Recorded {
                            201
                        } else {
                            200
                        });
                        item
                    }
                    Outcome::Conflict => conflict(result).problem(),
                })
                .collect();
            Ok(Json(json!({
                "recorded": count(Outcome::Recorded),
                "duplicates": count(Outcome::Duplicate),
                "conflicts": count(Outcome::Conflict),
                "items": items,
            }))
            .into_response())
        }
    }
}

pub(super) fn conflict(result: &ItemResult) -> ApiError {
    ApiError::Conflict {
        detail: format!(
            "event {} is already recorded for device {} with different content",
            result.event_id, result.device_id
        ),
        event_id: result.event_id.clone(),
        stream_version: result.stream_version,
    }
}

fn item_json(result: &ItemResult) -> Value {
    json!({
        "event_id": result.event_id,
        "device_id": result.device_id,
        "alert_key": result.alert_key,
        "stream_version": result.stream_version,
        "duplicate": result.outcome == Outcome::Duplicate,
        "alert": result.alert,
    })
}

/// One event of the audit trail, as the API shows it.
/// One event as the API shows it. `resolved_alarm` is the alarm a linked recovery names,
/// when the stream holds it: the recovery then takes effect no earlier than that alarm
/// (BRIEF rule 2), and `effective_at` says so.
pub fn event_json(
    device_id: &str,
    stored: &StoredEvent,
    resolved_alarm: Option<&RecordedEvent>,
    fold: &FoldConfig,
) -> Value {
    let event = &stored.event;
    let (mut effective_at, clock_skew) = effective_time(event, fold);
    if let Some(alarm) = resolved_alarm.filter(|a| {
        event.kind == Kind::Recovery && a.kind == Kind::Alarm && a.alert_key == event.alert_key
    }) {
        effective_at = effective_at.max(effective_time(alarm, fold).0);
    }
    json!({
        "event_id": event.event_id,
        "device_id": device_id,
        "stream_version": stored.stream_version,
        "kind": event.kind,
        "alert_key": event.alert_key,
        "occurred_at": event.occurred_at.unwrap_or(event.recorded_at),
        "occurred_at_given": event.occurred_at.is_some(),
        "effective_at": effective_at,
        "clock_skew": clock_skew,
        "recorded_at": event.recorded_at,
        "severity": event.severity,
        "summary": event.summary,
        "labels": event.labels,
        "payload": event.payload,
        "source": event.source,
        "resolves": event.resolves,
    })
}

/// Where a page of a trail starts: after this stream version, of the trail named by
/// `scope` (see [`trail_scope`]).
struct TrailCursor {
    after: i64,
    scope: String,
}

fn not_our_cursor() -> FieldError {
    FieldError::new("cursor", "is not a cursor this API returned")
}

/// A digest of the device, filters and position a cursor was handed out for: a cursor
/// only continues the trail it came from, never another device's or another filter's,
/// and a cursor whose version was edited no longer matches its digest.
fn trail_scope(device_id: &str, filter: &TrailFilter, after: i64) -> String {
    let name = format!(
        "{device_id}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{after}",
        filter.alert_key, filter.kind, filter.time, filter.from, filter.to
    );
    crate::integrations::short_hash(&name, 16)
}

/// The filters and page of an audit-trail request.
fn trail_request(
    params: &std::collections::BTreeMap<String, String>,
) -> Result<(TrailFilter, Option<TrailCursor>, i64), ApiError> {
    let limit = limit(params)?;
    let mut errors = Vec::new();
    let mut filter = TrailFilter::default();
    if let Some(key) = params.get("alert_key") {
        match check_name(key, MAX_NAME_CHARS) {
            Ok(()) => filter.alert_key = Some(key.clone()),
            Err(why) => errors.push(FieldError::new("alert_key", why)),
        }
    }
    match params.get("kind").map(String::as_str) {
        None => {}
        Some("alarm") => filter.kind = Some(Kind::Alarm),
        Some("recovery") => filter.kind = Some(Kind::Recovery),
        Some("acknowledgement") => filter.kind = Some(Kind::Acknowledgement),
        Some(_) => errors.push(FieldError::new(
            "kind",
            "must be alarm, recovery or acknowledgement",
        )),
    }
    match params.get("time").map(String::as_str) {
        None | Some("occurred_at") => filter.time = TimeField::OccurredAt,
        Some("recorded_at") => filter.time = TimeField::RecordedAt,
        Some(_) => errors.push(FieldError::new(
            "time",
            "must be occurred_at or recorded_at",
        )),
    }
    for (name, slot) in [("from", &mut filter.from), ("to", &mut filter.to)] {
        if let Some(text) = params.get(name) {
            match DateTime::parse_from_rfc3339(text) {
                Ok(at) => *slot = Some(at.with_timezone(&Utc)),
                Err(_) => errors.push(FieldError::new(
                    name,
                    "must be an RFC 3339 timestamp with an offset (URL-encode `+` as %2B)",
                )),
            }
        }
    }
    let after = match params.get("cursor") {
        None => None,
        Some(cursor) => match decode_cursor(cursor, 2) {
            // Only the canonical form this API writes: no sign, no leading zeros.
            Ok(parts) => match parts[0].parse::<i64>() {
                Ok(version)
                    if version > 0
                        && version.to_string() == parts[0]
                        && encode_cursor(&[&parts[0], &parts[1]]) == *cursor =>
                {
                    Some(TrailCursor {
                        after: version,
                        scope: parts[1].clone(),
                    })
                }
                _ => {
                    errors.push(not_our_cursor());
                    None
                }
            },
            Err(_) => {
                errors.push(not_our_cursor());
                None
            }
        },
    };
    if errors.is_empty() {
        Ok((filter, after, limit))
    } else {
        Err(ApiError::InvalidQuery(errors))
    }
}

/// One page of a device's trail as JSON: `(events, next_cursor)`; 404 for a device
/// with no events.
async fn trail_page(
    state: &AppState,
    device_id: &str,
    filter: &TrailFilter,
    cursor: Option<TrailCursor>,
    limit: i64,
) -> Result<(Vec<Value>, Option<String>, i64), ApiError> {
    let head = with_pool!(&state.db, pool => pool.stream_head(device_id).await)?;
    if head == 0 {
        return Err(ApiError::NotFound(format!(
            "no events recorded for device {device_id}"
        )));
    }
    let after = match cursor {
        None => 0,
        Some(cursor) if cursor.scope != trail_scope(device_id, filter, cursor.after) => {
            return Err(ApiError::InvalidQuery(vec![FieldError::new(
                "cursor",
                "was handed out for another device or other filters, or was edited",
            )]))
        }
        // Stream versions are never taken back, so a cursor past the head is forged.
        Some(cursor) if cursor.after > head => {
            return Err(ApiError::InvalidQuery(vec![not_our_cursor()]))
        }
        Some(cursor) => cursor.after,
    };
    let events = with_pool!(&state.db, pool => pool.trail(device_id, filter, after, limit).await)?;
    let next_cursor = match events.last() {
        Some(last) if events.len() as i64 == limit => Some(encode_cursor(&[
            &last.stream_version.to_string(),
            &trail_scope(device_id, filter, last.stream_version),
        ])),
        _ => None,
    };
    let linked: Vec<&str> = events
        .iter()
        .filter_map(|e| e.event.resolves.as_deref())
        .collect();
    let alarms: std::collections::HashMap<String, RecordedEvent> =
        with_pool!(&state.db, pool => pool.find_by_ids(device_id, &linked).await)?
            .into_iter()
            .map(|stored| (stored.event.event_id.clone(), stored.event))
            .collect();
    let events = events
        .iter()
        .map(|e| {
            let alarm = e.event.resolves.as_ref().and_then(|id| alarms.get(id));
            event_json(device_id, e, alarm, &state.fold)
        })
        .collect();
    Ok((events, next_cursor, head))
}

const TRAIL_PARAMS: [&str; 7] = ["alert_key", "kind", "time", "from", "to", "limit", "cursor"];

async fn trail(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let device_id = path_segments(path)?;
    path_name("device_id", &device_id)?;
    let params = parse_query(query.as_deref(), &TRAIL_PARAMS)?;
    let (filter, after, limit) = trail_request(&params)?;
    let (events, next_cursor, head) = trail_page(&state, &device_id, &filter, after, limit).await?;
    Ok(Json(json!({
        "device_id": device_id,
        "stream_version": head,
        "events": events,
        "next_cursor": next_cursor,
    })))
}

/// `GET /v1/devices/{device_id}/alerts/{alert_key}/events`: one alert's trail, with the
/// alert's state and episodes.
async fn alert_trail(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (device_id, alert_key) = path_segments(path)?;
    path_name("device_id", &device_id)?;
    path_name("alert_key", &alert_key)?;
    let params = parse_query(query.as_deref(), &TRAIL_PARAMS[1..])?;
    let (mut filter, after, limit) = trail_request(&params)?;
    filter.alert_key = Some(alert_key.clone());
    let alert = with_pool!(&state.db, pool => pool.alert(&device_id, &alert_key).await)?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no alert {alert_key} recorded for device {device_id}"
            ))
        })?;
    let episodes = with_pool!(&state.db, pool => pool.episodes(&device_id, &alert_key).await)?;
    let (events, next_cursor, _) = trail_page(&state, &device_id, &filter, after, limit).await?;
    Ok(Json(json!({
        "alert": alert,
        "episodes": episodes,
        "events": events,
        "next_cursor": next_cursor,
    })))
}

/// `GET /v1/events?after=POSITION&limit=N`: the global feed for followers. Pass the
/// `position` of the last event you processed as `after` (or `next_after`).
async fn feed(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = parse_query(query.as_deref(), &["after", "limit"])?;
    let limit = limit(&params)?;
    let cursor = match params.get("after") {
        None => FeedCursor::Start,
        Some(text) => match text.parse::<i64>() {
            Ok(0) => FeedCursor::Start,
            Ok(position) if position > 0 => FeedCursor::After(position),
            _ => {
                return Err(ApiError::InvalidQuery(vec![FieldError::new(
                    "after",
                    "must be a position this feed returned (a whole number), or 0",
                )]))
            }
        },
    };
    let events =
        with_pool!(&state.db, pool => pool.feed(cursor, limit).await)?.ok_or_else(|| {
            ApiError::InvalidQuery(vec![FieldError::new("after", "no event has this position")])
        })?;
    let next_after = match (events.last(), cursor) {
        (Some(last), _) => last.position,
        (None, FeedCursor::After(position)) => position,
        (None, FeedCursor::Start) => 0,
    };
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut json = event_json(&e.device_id, &e.stored, None, &state.fold);
            json["position"] = json!(e.position);
            json
        })
        .collect();
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}
