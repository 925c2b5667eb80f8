//! Facecraft's infrastructure: the Redis Streams queue, the S3 object store, configuration and
//! telemetry. The api and the worker depend on it; it depends on neither. The job contract it
//! carries lives in `facecraft-contract`.

pub mod config;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod queue;
pub mod store;
pub mod telemetry;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
