//! Liveness and readiness probes and the Prometheus metrics; none needs an API key.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::schema::{Health, Readiness};
use crate::{AppState, Probe};

type Shared = Arc<AppState>;

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::metrics))
}

/// Liveness
///
/// The process is up; checks nothing else.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses(
        (status = 200, description = "Alive.", body = Health, example = json!({"status": "ok"})),
    ),
)]
async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness
///
/// Redis and S3 both answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", body = Readiness,
            example = json!({"status": "ready", "redis": "ok", "s3": "ok"})),
        (status = 503, description = "Redis or S3 does not answer. The body is the readiness report, not an error body.", body = Readiness,
            example = json!({"status": "unavailable", "redis": "ok", "s3": "unavailable"})),
    ),
)]
async fn readyz(State(state): State<Shared>) -> Response {
    let r = state.readiness().await;
    let body = serde_json::json!({
        "status": if r.ok() { "ready" } else { "unavailable" },
        "redis": Probe::word(r.redis),
        "s3": Probe::word(r.s3),
    });
    (r.status(), Json(body)).into_response()
}
