//! Stable error codes shared by HTTP responses, failed-job records and logs.
//!
//! Clients match on these strings; never rename one. Add new ones at the end of the
//! table in docs/errors.md.

use serde::{Deserialize, Serialize};

use crate::job::QualityWarning;

/// Every failure a job or a request can end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Request problems (4xx).
    InvalidRequest,
    InvalidParams,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    QueueFull,
    RateLimited,
    /// Every slot for live event streams is taken.
    TooManyStreams,
    // Input problems: the job fails at once, retrying cannot help.
    InputNotFound,
    UnsupportedFormat,
    ImageTooLarge,
    ImageTooSmall,
    NoFaceDetected,
    MultipleFaces,
    FaceTooSmall,
    FaceCutOff,
    QualityRejected,
    OutputTooLarge,
    // Infrastructure problems: retried with backoff.
    StorageUnavailable,
    QueueUnavailable,
    Timeout,
    // Storage refused a request for a reason retrying cannot fix (permissions, bad bucket).
    StorageRejected,
    // Worker problems.
    ModelUnavailable,
    WorkerCrashed,
    Internal,
    // A batch's results are over the zip size limit.
    ArchiveTooLarge,
    /// The job needs the GPU lane (restoration) and no worker served it within
    /// `FACECRAFT_NO_GPU_WORKER_TIMEOUT`.
    NoGpuWorker,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidParams => "invalid_params",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::QueueFull => "queue_full",
            Self::RateLimited => "rate_limited",
            Self::TooManyStreams => "too_many_streams",
            Self::InputNotFound => "input_not_found",
            Self::UnsupportedFormat => "unsupported_format",
            Self::ImageTooLarge => "image_too_large",
            Self::ImageTooSmall => "image_too_small",
            Self::NoFaceDetected => "no_face_detected",
            Self::MultipleFaces => "multiple_faces",
            Self::FaceTooSmall => "face_too_small",
            Self::FaceCutOff => "face_cut_off",
            Self::QualityRejected => "quality_rejected",
            Self::OutputTooLarge => "output_too_large",
            Self::StorageUnavailable => "storage_unavailable",
            Self::QueueUnavailable => "queue_unavailable",
            Self::Timeout => "timeout",
            Self::StorageRejected => "storage_rejected",
            Self::ModelUnavailable => "model_unavailable",
            Self::WorkerCrashed => "worker_crashed",
            Self::Internal => "internal",
            Self::ArchiveTooLarge => "archive_too_large",
            Self::NoGpuWorker => "no_gpu_worker",
        }
    }

    /// The code with this stable name, if any.
    pub fn from_code(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// Transient failures are retried with backoff; everything else fails the job at once.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::StorageUnavailable | Self::QueueUnavailable | Self::Timeout
        )
    }
}

/// Lets tests and logs compare a code with its stable name directly.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as recorded on a job: a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{code}: {message}")]
pub struct JobError {
    pub code: ErrorCode,
    pub message: String,
    /// The quality report's warnings that failed a `quality=strict` job (`quality_rejected`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<QualityWarning>,
}

impl JobError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            warnings: Vec::new(),
        }
    }

    /// With the warnings that made a strict job fail.
    pub fn with_warnings(mut self, warnings: Vec<QualityWarning>) -> Self {
        self.warnings = warnings;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_as_str() {
        for code in [
            ErrorCode::InputNotFound,
            ErrorCode::UnsupportedFormat,
            ErrorCode::NoFaceDetected,
            ErrorCode::QueueFull,
            ErrorCode::WorkerCrashed,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn codes_round_trip_by_name() {
        assert_eq!(
            ErrorCode::from_code("image_too_small"),
            Some(ErrorCode::ImageTooSmall)
        );
        assert_eq!(ErrorCode::from_code("nope"), None);
    }

    #[test]
    fn only_infrastructure_is_transient() {
        assert!(ErrorCode::StorageUnavailable.is_transient());
        assert!(ErrorCode::Timeout.is_transient());
        assert!(!ErrorCode::UnsupportedFormat.is_transient());
        assert!(!ErrorCode::InputNotFound.is_transient());
    }
}
