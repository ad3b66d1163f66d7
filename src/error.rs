//! The one error type of the HTTP API and its mapping to RFC 9457 problem details.
//!
//! Every 4xx names what was wrong; a 5xx never carries internal error text (it is
//! logged instead).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ledger::LedgerError;
use crate::store::StoreError;

/// One bad field: where it is (`device_id`, `[3].kind`, `labels.env`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("invalid event")]
    InvalidEvent(Vec<FieldError>),
    #[error("invalid query parameters")]
    InvalidQuery(Vec<FieldError>),
    #[error("invalid path")]
    InvalidPath(Vec<FieldError>),
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict {
        detail: String,
        event_id: String,
        stream_version: i64,
    },
    #[error("a rebuild is already running in this process")]
    RebuildRunning,
    #[error("{0}")]
    NotFiring(String),
    /// No token, a malformed `Authorization` header, or a token that is not configured.
    #[error("{detail}")]
    Unauthorized { detail: String, invalid_token: bool },
    /// A valid token without the scope the route needs.
    #[error("{detail}")]
    Forbidden { detail: String, scope: &'static str },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a sender should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u64 = 1;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::InvalidQuery(_) | ApiError::InvalidPath(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::InvalidEvent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::RebuildRunning | ApiError::NotFiring(_) => {
                StatusCode::CONFLICT
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `type`, documented in docs/api.md.
    fn slug(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed-json",
            ApiError::InvalidEvent(_) => "invalid-event",
            ApiError::InvalidQuery(_) => "invalid-query",
            ApiError::InvalidPath(_) => "invalid-path",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict { .. } => "event-id-conflict",
            ApiError::RebuildRunning => "rebuild-running",
            ApiError::NotFiring(_) => "alert-not-firing",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "Malformed JSON",
            ApiError::InvalidEvent(_) => "Invalid event",
            ApiError::InvalidQuery(_) => "Invalid query parameters",
            ApiError::InvalidPath(_) => "Invalid path",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::NotFound(_) => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict { .. } => "Event id already recorded with different content",
            ApiError::RebuildRunning => "Rebuild already running",
            ApiError::NotFiring(_) => "Alert is not firing",
            ApiError::Unauthorized { .. } => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    /// The problem document, also used for one item of a batch answer.
    pub fn problem(&self) -> serde_json::Value {
        let detail = match self {
            ApiError::Unavailable(_) => {
                "the database is unavailable or contended; retry after the Retry-After delay"
                    .to_string()
            }
            ApiError::Internal(_) => "an internal error occurred; it has been logged".to_string(),
            other => other.to_string(),
        };
        let mut body = serde_json::json!({
            "type": format!("https://alert-ledger.dev/problems/{}", self.slug()),
            "title": self.title(),
            "status": self.status().as_u16(),
            "detail": detail,
        });
        match self {
            ApiError::InvalidEvent(errors)
            | ApiError::InvalidQuery(errors)
            | ApiError::InvalidPath(errors) => {
                body["errors"] = serde_json::json!(errors);
            }
            ApiError::Conflict {
                event_id,
                stream_version,
                ..
            } => {
                body["event_id"] = serde_json::json!(event_id);
                body["stream_version"] = serde_json::json!(stream_version);
            }
            _ => {}
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(error) => tracing::error!(%error, "internal error"),
            ApiError::Unavailable(error) => tracing::warn!(%error, "answering 503"),
            _ => {}
        }
        let mut response = (self.status(), axum::Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, ApiError::Unavailable(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        // RFC 6750 §3: say which scheme to use, and why a presented token failed.
        let challenge = match &self {
            ApiError::Unauthorized {
                invalid_token: false,
                ..
            } => Some("Bearer realm=\"alert-ledger\"".to_string()),
            ApiError::Unauthorized { .. } => {
                Some("Bearer realm=\"alert-ledger\", error=\"invalid_token\"".to_string())
            }
            ApiError::Forbidden { scope, .. } => Some(format!(
                "Bearer realm=\"alert-ledger\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Contended(..) | LedgerError::Unavailable(_) => {
                ApiError::Unavailable(error.to_string())
            }
            LedgerError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            ApiError::Unavailable(error.to_string())
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}
