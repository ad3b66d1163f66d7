//! Query strings, path segments and cursors: strict parsing with a 400 naming each
//! bad parameter. Unknown and repeated parameters are refused, like unknown fields.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{ApiError, FieldError};
use crate::submission::{check_name, MAX_NAME_CHARS};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// Parse `raw` allowing only `allowed` names, each at most once.
pub fn parse_query(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::InvalidQuery(vec![FieldError::new("", e.to_string())]))?;
    let mut params = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, value) in pairs {
        if !allowed.contains(&name.as_str()) {
            errors.push(FieldError::new(name, "unknown query parameter"));
            continue;
        }
        match params.entry(name) {
            std::collections::btree_map::Entry::Occupied(entry) => {
                errors.push(FieldError::new(entry.key().clone(), "given more than once"));
            }
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(value);
            }
        }
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(ApiError::InvalidQuery(errors))
    }
}

pub fn limit(params: &BTreeMap<String, String>) -> Result<i64, ApiError> {
    match params.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::InvalidQuery(vec![FieldError::new(
                "limit",
                format!("must be a whole number from 1 to {MAX_LIMIT}"),
            )])),
        },
    }
}

pub fn encode_cursor(parts: &[&str]) -> String {
    let json = serde_json::to_vec(parts).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode_cursor(text: &str, parts: usize) -> Result<Vec<String>, ApiError> {
    let invalid = || {
        ApiError::InvalidQuery(vec![FieldError::new(
            "cursor",
            "is not a cursor this API returned",
        )])
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let decoded: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if decoded.len() == parts && decoded.iter().all(|part| !part.contains('\0')) {
        Ok(decoded)
    } else {
        Err(invalid())
    }
}

/// Validate a device id or alert key taken from the path.
pub fn path_name(name: &str, value: &str) -> Result<(), ApiError> {
    check_name(value, MAX_NAME_CHARS)
        .map_err(|why| ApiError::InvalidPath(vec![FieldError::new(name, why)]))
}

/// Path segments, with axum's own rejections (bad UTF-8, missing segment) answered as
/// problem documents too.
pub fn path_segments<T>(
    path: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
) -> Result<T, ApiError> {
    path.map(|axum::extract::Path(value)| value)
        .map_err(|rejection| {
            ApiError::InvalidPath(vec![FieldError::new("path", rejection.body_text())])
        })
}
