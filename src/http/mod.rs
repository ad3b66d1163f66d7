//! The HTTP API (BRIEF §4): one `router()` per resource, merged here, plus the
//! problem+json answers for unknown routes, wrong methods and oversized bodies, and
//! the bearer-token check in front of all of `/v1` ([`auth`]).

mod admin;
mod alerts;
pub mod auth;
mod events;
mod health;
pub mod integrations;
mod notifications;
mod params;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::domain::FoldConfig;
use crate::error::ApiError;
use crate::integrations::alertmanager::AlertmanagerSettings;
use crate::ledger::Ledger;
use crate::notifications::dispatcher::Dispatcher;
use crate::projections::Projector;
use crate::store::Db;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<Ledger>,
    pub projector: Projector,
    pub rebuilds: Arc<admin::RebuildStatus>,
    pub db: Db,
    pub fold: FoldConfig,
    /// Present when `--notify-config` is given; `server::run` runs it.
    pub dispatcher: Option<Dispatcher>,
    /// Bearer tokens; none configured means no authentication (loopback only).
    pub auth: Arc<auth::Auth>,
    pub alertmanager: Arc<AlertmanagerSettings>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::router())
        .merge(alerts::router())
        .merge(health::router())
        .merge(admin::router())
        .merge(notifications::router())
        .merge(integrations::router())
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outside the routes and the fallback: an unknown /v1 path is a 401 without a
        // token, not a 404 that tells a stranger what exists.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        // Outermost, so refused requests are traced too. Its spans record method, path
        // and version, never headers: the Authorization header stays out of the logs.
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
