//! The HTTP API (docs/http-api.md). Only this module speaks HTTP and JSON; it turns requests into store and catalog
//! calls and their results into responses.

mod append;
mod auth;
mod error;
mod ops;
mod projections;
mod read;
mod reducers;
mod sources;
mod state;
pub mod validate;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::catalog::Catalog;
use crate::code::Reducers;
use crate::metrics::Metrics;
use crate::store::EventStore;

/// Request size limits (docs/http-api.md, "Limits and validation").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_batch_events: usize,
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 1024 * 1024,
            max_batch_events: 1000,
            max_request_bytes: 16 * 1024 * 1024,
        }
    }
}

pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub catalog: Arc<dyn Catalog>,
    pub metrics: Arc<Metrics>,
    pub reducers: Arc<Reducers>,
    pub projections: Arc<crate::projections::Projections>,
    pub limits: Limits,
    /// Set when shutdown begins, so `/readyz` turns away new traffic while in-flight requests finish.
    pub draining: AtomicBool,
}

pub fn router(state: Arc<AppState>) -> Router {
    let max_request_bytes = state.limits.max_request_bytes;
    Router::new()
        .route("/aggregates/{aggregate_id}/events", get(read::read_stream).post(append::append))
        .route("/aggregates/{aggregate_id}/state", get(state::read_state))
        .route("/events", get(read::read_log))
        .route("/reducers", get(reducers::list).post(reducers::upload))
        .route("/reducers/{upload_id}/status", get(reducers::status))
        .route(
            "/aggregate-types/{aggregate_type}/reducer",
            get(reducers::binding).put(reducers::bind).delete(reducers::unbind),
        )
        .route("/projections", get(projections::list).post(projections::deploy))
        .route("/projections/{id}/status", get(projections::status))
        .route("/projections/{id}/state/{key}", get(projections::query))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            ApiError::internal().into_response()
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id, tenant = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
