//! Prometheus metrics of a worker, served with `/healthz` on `FACECRAFT_WORKER_METRICS_ADDR`
//! in the OpenMetrics text format: jobs by outcome and error code, job and per-stage
//! durations, busy slots, and the queue gauges read from Redis at scrape time (under a short
//! timeout, so a Redis outage answers `facecraft_redis_up 0` instead of hanging the scrape).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use facecraft_contract::error::ErrorCode;
use facecraft_contract::job::{JobResult, JobState};
use facecraft_shared::queue::Queue;
use prometheus_client::encoding::text::{encode, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// How long a scrape waits for Redis; a scraper's own timeout is typically 10 s.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Label = [(&'static str, &'static str); 1];
/// Stage names come from the result's timings map, hence owned.
type StageFamily = Family<[(&'static str, String); 1], Histogram, fn() -> Histogram>;

/// The worker's own metrics; cheap to share, updated by the job tasks.
pub(crate) struct Metrics {
    registry: Registry,
    started: Counter,
    completed: Family<Label, Counter>,
    failed: Family<Label, Counter>,
    retried: Family<Label, Counter>,
    job_seconds: Histogram,
    stage_seconds: StageFamily,
    busy: Gauge,
}

impl Metrics {
    /// `devices`: each engine and where it runs (`Engines::devices`).
    pub fn new(slots: usize, devices: &[(&'static str, &'static str)]) -> Self {
        let mut registry = Registry::with_prefix("facecraft");
        let engine_info = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        for (engine, device) in devices {
            engine_info
                .get_or_create(&[("engine", *engine), ("device", *device)])
                .set(1);
        }
        registry.register(
            "engine_info",
            "The engines this worker loaded and the device each runs on (cpu or cuda)",
            engine_info,
        );
        let started = Counter::default();
        registry.register(
            "jobs_started",
            "Jobs this worker started running",
            started.clone(),
        );
        let completed = Family::<Label, Counter>::default();
        registry.register(
            "jobs_completed",
            "Jobs this worker brought to a terminal state, by state",
            completed.clone(),
        );
        let failed = Family::<Label, Counter>::default();
        registry.register(
            "jobs_failed",
            "Jobs this worker marked failed or dead, by error code",
            failed.clone(),
        );
        let retried = Family::<Label, Counter>::default();
        registry.register(
            "jobs_retried",
            "Transient failures this worker scheduled for a retry, by error code",
            retried.clone(),
        );
        // 50 ms to ~100 s: a portrait takes about a second on a CPU, more with CNN detection.
        let job_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register(
            "job_duration_seconds",
            "Time from start to outcome of one job run",
            job_seconds.clone(),
        );
        // 1 ms to ~33 s: stages range from a crop (ms) to U²-Net on a large photo (seconds).
        let stage_seconds: StageFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        registry.register(
            "stage_duration_seconds",
            "Time of each stage of succeeded jobs (fetch, decode, detect, ..., store)",
            stage_seconds.clone(),
        );
        let busy = Gauge::default();
        registry.register(
            "worker_busy_slots",
            "Jobs this worker holds now",
            busy.clone(),
        );
        let total = Gauge::<i64>::default();
        total.set(i64::try_from(slots).unwrap_or(i64::MAX));
        registry.register(
            "worker_slots",
            "Jobs this worker may hold at once (FACECRAFT_WORKER_CONCURRENCY)",
            total,
        );
        Self {
            registry,
            started,
            completed,
            failed,
            retried,
            job_seconds,
            stage_seconds,
            busy,
        }
    }

    /// Counts a slot as busy until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> BusyGuard {
        self.busy.inc();
        BusyGuard(self.clone())
    }

    pub fn started(&self) {
        self.started.inc();
    }

    pub fn run_time(&self, d: Duration) {
        self.job_seconds.observe(d.as_secs_f64());
    }

    pub fn succeeded(&self, result: &JobResult) {
        self.completed
            .get_or_create(&[("state", JobState::Succeeded.as_str())])
            .inc();
        for (stage, ms) in &result.timings_ms {
            self.stage_seconds
                .get_or_create(&[("stage", stage.clone())])
                .observe(*ms as f64 / 1000.0);
        }
    }

    /// A terminal failure: `failed` (permanent error) or `dead` (gave up).
    pub fn failed(&self, state: JobState, code: ErrorCode) {
        self.completed
            .get_or_create(&[("state", state.as_str())])
            .inc();
        self.failed.get_or_create(&[("code", code.as_str())]).inc();
    }

    pub fn cancelled(&self) {
        self.completed
            .get_or_create(&[("state", JobState::Cancelled.as_str())])
            .inc();
    }

    pub fn retried(&self, code: ErrorCode) {
        self.retried.get_or_create(&[("code", code.as_str())]).inc();
    }

    async fn render(&self, queue: &Queue) -> Result<String, std::fmt::Error> {
        let mut scrape = Registry::with_prefix("facecraft");
        facecraft_shared::metrics::register_queue(&mut scrape, queue, REDIS_TIMEOUT).await;
        let mut body = String::new();
        encode_registry(&mut body, &self.registry)?;
        encode(&mut body, &scrape)?;
        Ok(body)
    }
}

pub(crate) struct BusyGuard(Arc<Metrics>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.dec();
    }
}

struct Shared {
    metrics: Arc<Metrics>,
    queue: Queue,
}

/// Binds the metrics listener; the caller spawns the returned future.
pub(crate) async fn listen(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    queue: Queue,
) -> anyhow::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))?;
    let local = listener.local_addr().context("metrics listener address")?;
    let router = Router::new()
        .route("/metrics", get(scrape))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(Arc::new(Shared { metrics, queue }));
    let serve = async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    };
    Ok((local, serve))
}

async fn scrape(State(s): State<Arc<Shared>>) -> Response {
    match s.metrics.render(&s.queue).await {
        Ok(body) => {
            let mut resp = body.into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn text(m: &Metrics) -> String {
        let mut s = String::new();
        encode_registry(&mut s, &m.registry).unwrap_or_default();
        s
    }

    #[test]
    fn outcomes_and_stage_timings_are_exposed_with_labels() {
        let m = Arc::new(Metrics::new(3, &[("hog", "cpu"), ("u2netp", "cuda")]));
        let busy = m.busy();
        assert!(text(&m).contains("facecraft_worker_busy_slots 1\n"));
        drop(busy);
        m.started();
        m.succeeded(&JobResult {
            outputs: Vec::new(),
            face: None,
            timings_ms: BTreeMap::from([("decode".to_owned(), 1500), ("store".to_owned(), 3)]),
            quality: None,
        });
        m.failed(JobState::Dead, ErrorCode::WorkerCrashed);
        m.retried(ErrorCode::StorageUnavailable);
        let t = text(&m);
        for line in [
            "# TYPE facecraft_jobs_completed counter",
            "facecraft_jobs_completed_total{state=\"succeeded\"} 1",
            "facecraft_jobs_completed_total{state=\"dead\"} 1",
            "facecraft_jobs_failed_total{code=\"worker_crashed\"} 1",
            "facecraft_jobs_retried_total{code=\"storage_unavailable\"} 1",
            "facecraft_stage_duration_seconds_sum{stage=\"decode\"} 1.5",
            "facecraft_stage_duration_seconds_bucket{le=\"2.048\",stage=\"decode\"} 1",
            "facecraft_stage_duration_seconds_bucket{le=\"1.024\",stage=\"decode\"} 0",
            "facecraft_worker_busy_slots 0",
            "facecraft_worker_slots 3",
            "facecraft_engine_info{engine=\"hog\",device=\"cpu\"} 1",
            "facecraft_engine_info{engine=\"u2netp\",device=\"cuda\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "no `{line}` in\n{t}");
        }
    }
}
