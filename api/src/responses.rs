//! The error answers many operations share, as `utoipa::IntoResponses` types: an operation lists
//! them in its `#[utoipa::path(responses(...))]` next to its own answers, e.g.
//! `responses((status = 200, ...), AuthErrors, QueueUnavailable)`. Documentation only: the
//! handlers answer with `error::ApiError` and `error::CompatError`. A leaf beside `schema`, the
//! only module it imports.

use utoipa::IntoResponses;

use crate::schema::{CompatErrorBody, ErrorBody};

/// What every `/v1` operation with an API key may answer: 401, 429 (with `Retry-After`), 500.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AuthErrors {
    #[response(status = 401, description = "Missing or unknown API key.",
        example = json!({"error": "send an API key as `Authorization: Bearer <key>` or `X-API-Key`", "code": "unauthorized"}))]
    Unauthorized(ErrorBody),
    #[response(status = 429, description = "The API key's rate limit is used up; see `Retry-After`.",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
        example = json!({"error": "rate limit of this API key exceeded; retry later", "code": "rate_limited"}))]
    RateLimited(ErrorBody),
    #[response(status = 500, description = "A bug; details only in the server logs.",
        example = json!({"error": "internal error", "code": "internal"}))]
    Internal(ErrorBody),
}

/// 503 of an operation that reads Redis and S3.
#[derive(IntoResponses)]
#[response(status = 503, description = "Redis (`queue_unavailable`) or S3 (`storage_unavailable`) is unreachable; see `Retry-After`.",
    headers(("Retry-After" = u64, description = "Seconds to wait")),
    example = json!({"error": "a backing service is unavailable; retry later", "code": "storage_unavailable"}))]
#[allow(dead_code)]
pub(crate) struct BackendUnavailable(ErrorBody);

/// 503 of an operation that only reads or writes Redis.
#[derive(IntoResponses)]
#[response(status = 503, description = "Redis is unreachable (`queue_unavailable`); see `Retry-After`.",
    headers(("Retry-After" = u64, description = "Seconds to wait")),
    example = json!({"error": "a backing service is unavailable; retry later", "code": "queue_unavailable"}))]
#[allow(dead_code)]
pub(crate) struct QueueUnavailable(ErrorBody);

/// 503 of the batch operations.
#[derive(IntoResponses)]
#[response(status = 503, description = "Backlog full (`queue_full`), Redis/S3 unreachable, or `enhance_face=true` (face restoration) while no GPU worker runs (`no_gpu_worker`: these routes cannot wait for one to start; `POST /v1/jobs` does); see `Retry-After`.",
    headers(("Retry-After" = u64, description = "Seconds to wait")),
    example = json!({"error": "a backing service is unavailable; retry later", "code": "queue_unavailable"}))]
#[allow(dead_code)]
pub(crate) struct BatchUnavailable(ErrorBody);

/// [`AuthErrors`] of the Python-compatible operations, in their error shape (`CompatError`).
/// `/api/v1/process` answers its own result shape and lists its errors itself.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum CompatAuthErrors {
    #[response(status = 401, description = "Missing or unknown API key.",
        example = json!({"detail": "unauthorized", "message": "send an API key as `Authorization: Bearer <key>` or `X-API-Key`"}))]
    Unauthorized(CompatErrorBody),
    #[response(status = 429, description = "The API key's rate limit is used up; see `Retry-After`.",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
        example = json!({"detail": "rate_limited", "message": "rate limit of this API key exceeded; retry later"}))]
    RateLimited(CompatErrorBody),
    #[response(status = 500, description = "A bug; details only in the server logs.",
        example = json!({"detail": "internal", "message": "internal error"}))]
    Internal(CompatErrorBody),
}

/// 503 of the Python-compatible operations that enqueue jobs.
#[derive(IntoResponses)]
#[response(status = 503, description = "Backlog full (`queue_full`) or Redis/S3 unreachable; see `Retry-After`.",
    headers(("Retry-After" = u64, description = "Seconds to wait")),
    example = json!({"detail": "queue_full", "message": "the queue is full (100000 jobs waiting); retry later"}))]
#[allow(dead_code)]
pub(crate) struct CompatBacklogUnavailable(CompatErrorBody);
