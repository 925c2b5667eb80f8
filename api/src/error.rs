//! The error types of the HTTP layer. [`ApiError`]: a status, a stable code and a message,
//! rendered as `{"error": message, "code": code}`; [`CompatError`]: the same error in the shape
//! of the Python-compatible routes. Server-side failures never show their internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use facecraft_contract::job::{JobId, QualityWarning};
use facecraft_contract::ErrorCode;
use facecraft_shared::queue::QueueError;
use facecraft_shared::store::StoreError;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    pub fn unavailable(code: ErrorCode, retry_after: u64) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: "a backing service is unavailable; retry later".into(),
            retry_after: Some(retry_after),
        }
    }

    /// This error in the shape the route at `path` answers in: the Python service's routes
    /// (`/api/*`, `/status`, `/ready`, `/health`) in theirs, `/api/v1/process` in its own (with
    /// `success: false`), every other route in ours. The one rule for errors made outside a
    /// handler (rejections, body limits).
    pub(crate) fn into_response_for(self, path: &str) -> Response {
        if path == "/api/v1/process" {
            CompatError::from(self).process().into_response()
        } else if path.starts_with("/api/") || matches!(path, "/status" | "/ready" | "/health") {
            CompatError::from(self).into_response()
        } else {
            self.into_response()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, message = %self.message, "request failed");
        }
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error"
        } else {
            self.message.as_str()
        };
        let mut resp = (
            self.status,
            Json(Body {
                error: message,
                code: self.code.as_str(),
                request_id: crate::http::request_id(),
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Full(n) => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: ErrorCode::QueueFull,
                message: format!("the queue is full ({n} jobs waiting); retry later"),
                retry_after: Some(10),
            },
            QueueError::Unavailable(_) | QueueError::Pool(_) => {
                tracing::error!(error = %e, "redis unavailable");
                Self::unavailable(ErrorCode::QueueUnavailable, 2)
            }
            QueueError::NotReplicated { .. } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: ErrorCode::QueueUnavailable,
                message: format!(
                    "{e}; the job may or may not have been kept: submit again, with the same \
                     idempotency key to get the same job if it was"
                ),
                retry_after: Some(1),
            },
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                other.code(),
                other.to_string(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::new(
                StatusCode::NOT_FOUND,
                ErrorCode::InputNotFound,
                e.to_string(),
            ),
            StoreError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                e.to_string(),
            ),
            StoreError::Unavailable(_) => {
                tracing::error!(error = %e, "object storage unavailable");
                Self::unavailable(ErrorCode::StorageUnavailable, 5)
            }
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                other.code(),
                other.to_string(),
            ),
        }
    }
}

/// An error in the old service's shape: FastAPI's `{"detail": ...}`, here with our stable code
/// as the detail, plus a message and, when a job exists, its id.
pub(crate) struct CompatError {
    error: ApiError,
    job_id: Option<JobId>,
    /// `/api/v1/process` answers its own result shape with `success: false`.
    process_shape: bool,
    /// The quality warnings of a job that failed `quality_rejected`; a `warnings` field when
    /// there are any.
    warnings: Vec<QualityWarning>,
}

impl From<ApiError> for CompatError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            job_id: None,
            process_shape: false,
            warnings: Vec::new(),
        }
    }
}

impl From<QueueError> for CompatError {
    fn from(e: QueueError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<StoreError> for CompatError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl CompatError {
    pub(crate) fn with_job(mut self, id: JobId) -> Self {
        self.job_id = Some(id);
        self
    }

    pub(crate) fn process(mut self) -> Self {
        self.process_shape = true;
        self
    }

    pub(crate) fn with_warnings(mut self, warnings: Vec<QualityWarning>) -> Self {
        self.warnings = warnings;
        self
    }
}

impl IntoResponse for CompatError {
    fn into_response(self) -> Response {
        let e = self.error;
        if e.status.is_server_error() {
            tracing::error!(code = %e.code, message = %e.message, "compat request failed");
        }
        let message = if e.status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_owned()
        } else {
            e.message
        };
        let mut body = if self.process_shape {
            json!({
                "success": false,
                "job_id": self.job_id,
                "processing_time_ms": Value::Null,
                "png_url": Value::Null,
                "jpg_url": Value::Null,
                "download_url": Value::Null,
                "result": Value::Null,
                "error": e.code.as_str(),
                "error_message": message,
                "detail": e.code.as_str(),
            })
        } else {
            let mut b = json!({"detail": e.code.as_str(), "message": message});
            if let Some(id) = self.job_id {
                b["job_id"] = json!(id);
            }
            b
        };
        if !self.warnings.is_empty() {
            body["warnings"] = json!(self.warnings);
        }
        if let Some(id) = crate::http::request_id() {
            body["request_id"] = json!(id);
        }
        let mut resp = (e.status, Json(body)).into_response();
        if let Some(secs) = e.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(id) = self.job_id {
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(resp: Response) -> Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn compat_errors_list_the_warnings_of_a_strict_failure() {
        let rejected = || {
            CompatError::from(ApiError::bad_request(
                ErrorCode::QualityRejected,
                "the portrait fails the quality check",
            ))
            .with_warnings(vec![QualityWarning::Blurry, QualityWarning::Padded])
        };
        let b = body(rejected().into_response()).await;
        assert_eq!(b["detail"], "quality_rejected");
        assert_eq!(b["warnings"], json!(["blurry", "padded"]));
        let b = body(rejected().process().into_response()).await;
        assert_eq!(b["error"], "quality_rejected");
        assert_eq!(b["warnings"], json!(["blurry", "padded"]));
        // Without warnings there is no field.
        let plain = CompatError::from(ApiError::bad_request(ErrorCode::NoFaceDetected, "none"));
        let b = body(plain.process().into_response()).await;
        assert!(b.get("warnings").is_none(), "{b}");
    }
}
