//! Facecraft's shared crate: the job contract, the Redis Streams queue, the S3 object store,
//! configuration and telemetry. The api and the worker depend on it; it depends on neither.

pub mod config;
pub mod error;
pub mod job;
pub mod queue;
pub mod store;
pub mod telemetry;

pub use error::{ErrorCode, JobError};
