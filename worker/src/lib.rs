//! Facecraft worker: consumes portrait jobs from Redis Streams (`serve`) or runs the same
//! pipeline (`facecraft-pipeline`) over local files (`process`).

pub mod config;
mod context;
mod job;
mod metrics;
pub mod process;
pub mod serve;

pub use facecraft_shared::shutdown_signal;
pub use serve::serve;
