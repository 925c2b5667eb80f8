//! The one error type of the HTTP layer: a status, a stable code and a message, rendered as
//! `{"error": message, "code": code}`. Server-side failures never show their internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use facecraft_shared::queue::QueueError;
use facecraft_shared::store::StoreError;
use facecraft_shared::ErrorCode;
use serde::Serialize;

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
