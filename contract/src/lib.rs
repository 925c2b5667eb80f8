//! Facecraft's job contract: the job, its parameters and their validation, the status record
//! and the error codes. Serde only (clap behind `cli`, utoipa behind `openapi`): every other
//! crate depends on it, and it depends on no I/O crate.

#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod job;
pub mod retry;

pub use error::{ErrorCode, JobError};
