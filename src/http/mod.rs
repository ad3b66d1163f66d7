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

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::Router;
use tower_http::trace::TraceLayer;
use tracing::Span;

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
        // Outermost, so refused requests are traced too.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span every request is traced in: method, path and version only. Not the headers
/// (the `Authorization` header), and not the query string, which tower-http's default
/// span records with the URI: a client that sends `?access_token=…` would otherwise
/// have its token written into every log line of the request.
fn request_span(request: &Request<Body>) -> Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        version = ?request.version(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_request_span_leaves_out_the_query_string() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        let request = Request::get("/v1/alerts?access_token=QUERYSECRET-0123456789&limit=5")
            .header("authorization", "Bearer HEADERSECRET-0123456789")
            .body(Body::empty())
            .expect("a request");
        tracing::subscriber::with_default(subscriber, || {
            let _entered = request_span(&request).entered();
            tracing::debug!("started processing request");
        });
        let output = String::from_utf8(captured.0.lock().expect("not poisoned").clone())
            .expect("UTF-8 output");
        assert_eq!(
            output,
            "DEBUG request{method=GET path=/v1/alerts version=HTTP/1.1}: started processing request\n"
        );
    }
}
