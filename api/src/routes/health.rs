//! Liveness and readiness probes and the Prometheus metrics; none needs an API key.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use facecraft_contract::job::Lane;
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

/// Live workers per lane (`cpu`, `gpu`), from the workers' announcements; both lanes are
/// always listed, so a lane without workers shows 0.
pub(crate) fn lane_workers(
    live: &[facecraft_shared::queue::WorkerAnnouncement],
) -> std::collections::BTreeMap<Lane, usize> {
    let mut lanes: std::collections::BTreeMap<Lane, usize> =
        Lane::ALL.iter().map(|l| (*l, 0)).collect();
    for w in live {
        *lanes.entry(w.lane).or_default() += 1;
    }
    lanes
}

/// Whether each lane has a live worker (`/readyz`, `/ready`); `null`s while Redis cannot say.
pub(crate) fn lanes_served(
    live: &Result<
        Vec<facecraft_shared::queue::WorkerAnnouncement>,
        facecraft_shared::queue::QueueError,
    >,
) -> Value {
    match live {
        Ok(live) => serde_json::json!(lane_workers(live)
            .into_iter()
            .map(|(lane, n)| (lane.as_str(), n > 0))
            .collect::<std::collections::BTreeMap<_, _>>()),
        Err(_) => serde_json::json!({"cpu": null, "gpu": null}),
    }
}

/// Readiness
///
/// Redis and S3 both answer. `lanes` tells which lanes have a live worker (not needed for
/// readiness: workers may scale from zero).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", body = Readiness,
            example = json!({"status": "ready", "redis": "ok", "s3": "ok", "lanes": {"cpu": true, "gpu": false}})),
        (status = 503, description = "Redis or S3 does not answer. The body is the readiness report, not an error body.", body = Readiness,
            example = json!({"status": "unavailable", "redis": "ok", "s3": "unavailable", "lanes": {"cpu": true, "gpu": false}})),
    ),
)]
async fn readyz(State(state): State<Shared>) -> Response {
    let (r, live) = tokio::join!(state.readiness(), state.queue.live_workers());
    let body = serde_json::json!({
        "status": if r.ok() { "ready" } else { "unavailable" },
        "redis": Probe::word(r.redis),
        "s3": Probe::word(r.s3),
        "lanes": lanes_served(&live),
    });
    (r.status(), Json(body)).into_response()
}
