//! Facecraft's HTTP API: accepts jobs, stores uploads in S3, enqueues jobs on Redis Streams
//! and serves their status. It never touches pixels; workers do.

mod auth;
mod batches;
mod compat;
pub mod config;
mod docs;
pub mod error;
mod events;
mod http;
mod linger;
mod metrics;
mod openapi;
mod page;
mod ratelimit;
mod responses;
mod routes;
mod schema;
mod submit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use facecraft_shared::queue::Queue;
use facecraft_shared::store::ObjectStore;
use tokio::net::TcpListener;

pub use config::Settings;
pub use facecraft_shared::shutdown_signal;

/// What every handler sees.
pub(crate) struct AppState {
    pub queue: Queue,
    pub store: ObjectStore,
    pub auth: auth::Auth,
    pub allowed_buckets: Vec<String>,
    pub max_upload_bytes: usize,
    pub streams: events::Streams,
    /// How long `/api/v1/process*` waits for a job to end.
    pub compat_wait: Duration,
    pub max_batch_size: usize,
    pub max_batch_bytes: usize,
    /// For `/status`'s uptime.
    pub started: std::time::Instant,
    pub http_metrics: Arc<http::HttpMetrics>,
}

/// What `/readyz` and the compat `/ready` report: whether Redis and S3 answer now.
pub(crate) struct Probe {
    pub redis: bool,
    pub s3: bool,
}

impl Probe {
    pub fn ok(&self) -> bool {
        self.redis && self.s3
    }

    /// `"ok"` or `"unavailable"`, as both readiness bodies spell it.
    pub fn word(up: bool) -> &'static str {
        if up {
            "ok"
        } else {
            "unavailable"
        }
    }

    /// 200 when both answer, else 503.
    pub fn status(&self) -> axum::http::StatusCode {
        if self.ok() {
            axum::http::StatusCode::OK
        } else {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl AppState {
    /// Pings Redis and S3 at once; failures are logged here, once.
    pub async fn readiness(&self) -> Probe {
        let (redis, s3) = tokio::join!(self.queue.ping(), self.store.check());
        if let Err(e) = &redis {
            tracing::warn!(error = %e, "readiness: redis");
        }
        if let Err(e) = &s3 {
            tracing::warn!(error = %e, "readiness: s3");
        }
        Probe {
            redis: redis.is_ok(),
            s3: s3.is_ok(),
        }
    }
}

/// A bound, not yet serving, API server. Tests build it on port 0 and read `port()`.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown_timeout: Duration,
    /// Tells open event streams to end when shutdown starts.
    stop_streams: tokio::sync::watch::Sender<bool>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings
            .validate()
            .map_err(anyhow::Error::msg)
            .context("invalid configuration")?;
        let keys = settings.keys().map_err(anyhow::Error::msg)?;
        if keys.is_empty() {
            tracing::warn!("FACECRAFT_AUTH_DISABLED=true: authentication is off and every request acts as tenant `default`");
        }
        let queue = Queue::new(&settings.redis, &settings.queue)
            .context("setting up the redis connections")?;
        tokio::spawn({
            let queue = queue.clone();
            async move { queue.warn_if_legacy().await }
        });
        if let Some(timeout) = settings.queue.no_gpu_worker_timeout() {
            tokio::spawn(sweep_unserved(queue.clone(), timeout));
        }
        let store = ObjectStore::new(&settings.s3)
            .await
            .context("building the S3 client")?;
        let mut allowed_buckets = settings.allowed_buckets.clone();
        allowed_buckets.push(settings.s3.bucket.clone());
        let (stop_streams, streams_stopped) = tokio::sync::watch::channel(false);
        let state = Arc::new(AppState {
            queue: queue.clone(),
            store,
            auth: auth::Auth::new(
                &keys,
                &settings.admin_tenants,
                ratelimit::Limiter::new(
                    queue.clone(),
                    settings.rate_limit_per_min,
                    settings.rate_limit_burst,
                ),
            ),
            allowed_buckets,
            max_upload_bytes: settings.max_upload_bytes,
            streams: events::Streams::new(&settings, streams_stopped),
            compat_wait: Duration::from_secs(settings.compat_wait_secs),
            max_batch_size: settings.max_batch_size,
            max_batch_bytes: settings.max_batch_bytes,
            started: std::time::Instant::now(),
            http_metrics: Arc::default(),
        });
        let router = routes::router(state, &settings, &openapi::spec(settings.max_batch_size));
        let listener = TcpListener::bind(&settings.addr)
            .await
            .with_context(|| format!("binding {}", settings.addr))?;
        Ok(Self {
            listener,
            router,
            shutdown_timeout: Duration::from_secs(settings.shutdown_timeout_secs),
            stop_streams,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded).
    pub async fn run_until<F>(self, shutdown: F) -> anyhow::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let grace = self.shutdown_timeout;
        let stop_streams = self.stop_streams;
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            stop_streams.send_replace(true);
            let _ = tx.send(());
        });
        let serve = tokio::spawn(async move { serve.await });
        tokio::select! {
            res = serve => res.context("server task")?.context("serving")?,
            () = async move {
                if rx.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => tracing::warn!("shutdown timeout reached with requests still open"),
        }
        Ok(())
    }
}

/// How often the API looks for GPU-lane jobs no worker can take (`no_gpu_worker`).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Fails GPU-lane jobs once no GPU worker has been alive for `timeout` (see
/// `Queue::fail_unserved`). CPU workers sweep too, so either alone is enough.
async fn sweep_unserved(queue: Queue, timeout: std::time::Duration) {
    let mut failing = false;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        match queue
            .fail_unserved(facecraft_contract::job::Lane::Gpu, timeout)
            .await
        {
            Ok(_) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "sweeping the GPU lane failed; retrying");
            }
            Err(_) => {}
        }
    }
}
