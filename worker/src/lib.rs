//! Facecraft worker: consumes portrait jobs from Redis Streams (`serve`) or runs the same
//! pipeline over local files (`process`).

pub mod config;
pub mod engines;
mod job;
pub mod pipeline;
pub mod portrait;
pub mod process;
pub mod serve;

pub use serve::serve;

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
