//! `GET /metrics`: Prometheus metrics of this API process and of the queue, in the OpenMetrics
//! text format. Queue figures are read from Redis at scrape time under a short timeout; when
//! Redis does not answer, the scrape still answers with what this process knows and
//! `facecraft_redis_up 0`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::AppState;

/// How long a scrape waits for Redis; a scraper's own timeout is typically 10 s.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    service: &'static str,
    version: &'static str,
}

pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus metrics
///
/// OpenMetrics text: jobs enqueued, event streams, HTTP requests by route and status and their
/// durations, the build, rate-limit fallbacks, queue length, consumer-group lag, pending,
/// delayed and dead entries, `facecraft_redis_up`. No API key: keep the port internal.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    responses(
        (status = 200, description = "The metrics.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String,
            example = "# TYPE facecraft_jobs_enqueued counter\nfacecraft_jobs_enqueued_total 3\n# EOF\n"),
    ),
)]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut registry = Registry::with_prefix("facecraft");
    let enqueued = Counter::<u64>::default();
    enqueued.inc_by(state.queue.enqueued_total());
    registry.register(
        "jobs_enqueued",
        "Jobs created by this API process (idempotent replays not counted)",
        enqueued,
    );
    let unreplicated = Counter::<u64>::default();
    unreplicated.inc_by(state.queue.unreplicated_total());
    registry.register(
        "jobs_enqueued_unreplicated",
        "Enqueues refused (503) because fewer than FACECRAFT_REDIS_WAIT_REPLICAS replicas \
         confirmed them in time",
        unreplicated,
    );
    let open = Gauge::<i64>::default();
    open.set(i64::try_from(state.streams.open()).unwrap_or(i64::MAX));
    registry.register("sse_streams", "Event streams open now", open);
    let rejected = Counter::<u64>::default();
    rejected.inc_by(state.streams.rejected());
    registry.register(
        "sse_rejected",
        "Event streams refused with too_many_streams",
        rejected,
    );
    registry.register(
        "http_requests",
        "HTTP requests answered, by route pattern and status",
        state.http_metrics.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time from a request's arrival to its response head, by route pattern",
        state.http_metrics.duration.clone(),
    );
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            service: "api",
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    registry.register("build_info", "The running build (always 1)", build);
    if let Some(limiter) = state.auth.limiter() {
        let local = Counter::<u64>::default();
        local.inc_by(limiter.local_decisions());
        registry.register(
            "rate_limit_local_decisions",
            "Rate-limit decisions taken by this process alone because Redis could not answer",
            local,
        );
        let degraded = Gauge::<i64>::default();
        degraded.set(i64::from(limiter.degraded()));
        registry.register(
            "rate_limit_degraded",
            "1 while this process limits rates on its own (Redis not answering), else 0",
            degraded,
        );
    }
    facecraft_shared::metrics::register_queue(&mut registry, &state.queue, REDIS_TIMEOUT).await;

    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        tracing::error!(error = %e, "encoding metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}
