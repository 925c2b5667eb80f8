//! The error types of the HTTP layer. [`ApiError`]: a status, a stable code and a message,
//! rendered as `{"error": message, "code": code}`; [`CompatError`]: the same error in the shape
//! of the Python-compatible routes. Server-side failures never show their internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use facecraft_contract::job::JobId;
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
}

impl From<ApiError> for CompatError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            job_id: None,
            process_shape: false,
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
        let body = if self.process_shape {
            json!({
                "success": false,
                "job_id": self.job_id,
                "processing_time_ms": Value::Null,
                "png_url": Value::Null,
                "jpg_url": Value::Null,
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
