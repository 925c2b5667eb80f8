//! Facecraft worker: consumes portrait jobs from Redis Streams (`serve`) or runs the same
//! pipeline over local files (`process`).

pub mod config;
pub mod engines;
mod job;
mod metrics;
pub mod pipeline;
pub mod portrait;
pub mod process;
pub mod serve;

pub use facecraft_shared::shutdown_signal;
pub use serve::serve;
