//! Facecraft's shared crate: the job contract, the Redis Streams queue, the S3 object store,
//! configuration and telemetry. The api and the worker depend on it; it depends on neither.

pub mod cli;
pub mod config;
pub mod error;
pub mod job;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod queue;
pub mod store;
pub mod telemetry;

pub use error::{ErrorCode, JobError};

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
