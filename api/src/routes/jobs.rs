//! `/v1/jobs`: create, read, cancel, download and retry jobs, and the dead jobs of `/v1/dead`.
//! The event stream of a job is [`crate::events`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use facecraft_contract::job::{
    now_ms, validate_key, Format, Job, JobId, JobParams, JobState, JobStatus, ObjectRef,
};
use facecraft_contract::ErrorCode;
use facecraft_shared::queue::{CancelOutcome, Enqueued, RequeueOutcome};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::responses::{AuthErrors, BackendUnavailable, QueueUnavailable};
use crate::schema::{DeadList, ErrorBody, JobUpload};
use crate::submit::{
    self, body_error, check_bucket, invalid, parse_json, read_limited, upload_ref, InputRef,
    OutputRequest,
};
use crate::AppState;

type Shared = Arc<AppState>;

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/v1/jobs", post(create_job))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/v1/jobs/{id}/result/{format}", get(get_result))
        .route("/v1/jobs/{id}/events", get(crate::events::job_events))
        .route("/v1/jobs/{id}/retry", post(retry_job))
        .route("/v1/dead", get(list_dead))
}

/// JSON body of `POST /v1/jobs`: a photo already in S3.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct JobRequest {
    input: InputRef,
    /// Absent or `null`: the defaults (or a preset's).
    #[serde(default)]
    #[schema(value_type = Option<JobParams>)]
    params: JobParams,
    /// Where results go; default: the configured bucket, prefix `results/`.
    #[serde(default)]
    output: Option<OutputRequest>,
    /// The same key from the same tenant returns the first job (1-128 printable ASCII
    /// characters). The `Idempotency-Key` header wins over this field.
    #[serde(default)]
    #[schema(pattern = "^[!-~]{1,128}$")]
    idempotency_key: Option<String>,
}

fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    let ok = (1..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "idempotency key must be 1-128 printable ASCII characters",
        ))
    }
}

/// Create a job
///
/// Either upload the photo as `multipart/form-data` (stored in S3 first), or send JSON that
/// references a photo already in S3. The job is queued and its status record returned with a
/// `Location` header; poll `GET /v1/jobs/{id}` until it ends.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "create_job",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The same key from the same tenant returns the first job instead of a new one (1-128 printable ASCII characters)", example = "employee-4711", pattern = "^[!-~]{1,128}$"),
    ),
    request_body(
        description = "A JSON S3 reference, or a multipart upload.",
        content(
            (JobRequest = "application/json", example = json!({"input": {"key": "inbox/me.jpg"}, "params": {"width": 648, "height": 648, "formats": ["png", "jpg"]}, "output": {"prefix": "badges/"}, "idempotency_key": "employee-4711"})),
            (JobUpload = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Queued; the status record of the new job.", body = JobStatus,
            headers(("Location" = String, description = "`/v1/jobs/{id}`")), example = json!({"id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "state": "queued", "attempts": 0, "created_at": "2026-01-05T10:00:00.000Z", "updated_at": "2026-01-05T10:00:00.000Z", "input": {"bucket": "facecraft", "key": "inbox/me.jpg"}, "params": {"width": 648, "height": 648, "background": [240, 240, 240], "transparent": false, "face_margin": 0.3, "eye_line": 0.4, "oval_mask": true, "enhance": true, "enhance_fidelity": 0.7, "formats": ["png", "jpg"], "jpeg_max_bytes": 101376, "face_policy": "largest", "detector": "hog", "segmentation_model": "u2netp", "remove_background": true, "quality": "report"}, "output": {"bucket": "facecraft", "prefix": "results/"}})),
        (status = 200, description = "An idempotent replay: the status record of the job first created with this key.", body = JobStatus,
            headers(("Location" = String, description = "`/v1/jobs/{id}`"))),
        (status = 400, description = "Malformed JSON or S3 key, missing image field (`invalid_request`); unknown, mistyped or out-of-range parameter (`invalid_params`); empty file (`unsupported_format`).", body = ErrorBody,
            examples(
                ("invalid_params" = (value = json!({"error": "width must be 16-4096, got 0", "code": "invalid_params"}))),
                ("invalid_request" = (value = json!({"error": "multipart upload needs the image in a field named `image` (or `file`)", "code": "invalid_request"}))),
                ("unsupported_format" = (value = json!({"error": "the uploaded file is empty", "code": "unsupported_format"}))),
            )),
        (status = 403, description = "A bucket that `FACECRAFT_ALLOWED_BUCKETS` does not list.", body = ErrorBody,
            example = json!({"error": "bucket `other` is not allowed", "code": "invalid_request"})),
        (status = 413, description = "Upload over `FACECRAFT_MAX_UPLOAD_BYTES`.", body = ErrorBody,
            example = json!({"error": "request body is over the size limit", "code": "payload_too_large"})),
        (status = 415, description = "Neither JSON nor multipart.", body = ErrorBody,
            example = json!({"error": "send application/json with an S3 reference, or multipart/form-data with an `image` field", "code": "unsupported_media_type"})),
        (status = 503, description = "The backlog is at `FACECRAFT_MAX_BACKLOG` (`queue_full`), or Redis or S3 is unreachable; see `Retry-After`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait")),
            examples(
                ("queue_full" = (value = json!({"error": "the queue is full (100000 jobs waiting); retry later", "code": "queue_full"}))),
                ("queue_unavailable" = (value = json!({"error": "a backing service is unavailable; retry later", "code": "queue_unavailable"}))),
                ("storage_unavailable" = (value = json!({"error": "a backing service is unavailable; retry later", "code": "storage_unavailable"}))),
            )),
        AuthErrors,
    ),
)]
async fn create_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    Caller { tenant, .. }: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let header_idem = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| invalid("Idempotency-Key is not ASCII"))
        })
        .transpose()?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let id = JobId::new();
    let (input, params, output, body_idem) = if content_type.starts_with("application/json") {
        let body = Bytes::from_request(req, &())
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        let r: JobRequest = parse_json(&body)?;
        (
            r.input.resolve(&state),
            r.params,
            r.output,
            r.idempotency_key,
        )
    } else if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        let form = read_form(multipart, state.max_upload_bytes).await?;
        let params = form.params()?;
        let Some((filename, data)) = form.file else {
            return Err(invalid(
                "multipart upload needs the image in a field named `image` (or `file`)",
            ));
        };
        if data.is_empty() {
            return Err(ApiError::bad_request(
                ErrorCode::UnsupportedFormat,
                "the uploaded file is empty",
            ));
        }
        let input = upload_ref(&state, &tenant, &id, filename.as_deref());
        // Validate everything before writing to S3, so a bad request leaves nothing behind.
        params
            .validate()
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParams, e))?;
        state
            .store
            .put(&input, data, "application/octet-stream")
            .await?;
        (input, params, None, form.idempotency_key)
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send application/json with an S3 reference, or multipart/form-data with an `image` field",
        ));
    };
    params
        .validate()
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParams, e))?;
    check_bucket(&state, &input.bucket)?;
    validate_key(&input.key).map_err(invalid)?;
    let output = OutputRequest::resolve(output, &state)?;
    // Both are checked, so a bad key is never hidden by the other; the header wins.
    for k in header_idem.iter().chain(body_idem.iter()) {
        check_idempotency_key(k)?;
    }
    let idempotency_key = header_idem.or(body_idem);
    let job = Job {
        id,
        tenant: tenant.clone(),
        input,
        params,
        output,
        idempotency_key,
        created_at_ms: now_ms(),
    };
    let (code, status) = match state.queue.enqueue(&job).await? {
        Enqueued::Created(_) => {
            tracing::info!(job_id = %job.id, tenant = %tenant, "job enqueued");
            (StatusCode::ACCEPTED, JobStatus::queued(&job))
        }
        Enqueued::Existing(existing) => {
            let status = state
                .queue
                .status(&existing, Some(&tenant))
                .await?
                .ok_or_else(|| ApiError::not_found("job of this idempotency key"))?;
            (StatusCode::OK, status)
        }
    };
    let location = format!("/v1/jobs/{}", status.id);
    Ok(submit::with_location(code, Json(status), &location))
}

/// Multipart fields: the image, an optional `params` JSON object, and single params as fields.
struct Form {
    file: Option<(Option<String>, Bytes)>,
    params_json: Option<String>,
    fields: Map<String, Value>,
    idempotency_key: Option<String>,
}

impl Form {
    fn params(&self) -> Result<JobParams, ApiError> {
        let mut obj = match &self.params_json {
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => {
                    // Checked on its own too: single fields may override a bad value in it,
                    // but a request that carries one is wrong, not half right.
                    serde_json::from_value::<JobParams>(Value::Object(m.clone()))
                        .map_err(|e| format!("`params`: {e}"))
                        .and_then(|p| p.validate().map_err(|e| format!("`params`: {e}")))
                        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParams, e))?;
                    m
                }
                Ok(_) => {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidParams,
                        "`params` must be a JSON object",
                    ))
                }
                Err(e) => {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidParams,
                        format!("`params`: {e}"),
                    ))
                }
            },
            None => Map::new(),
        };
        for (k, v) in &self.fields {
            obj.insert(k.clone(), v.clone());
        }
        serde_json::from_value(Value::Object(obj))
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParams, e.to_string()))
    }
}

async fn read_form(mut mp: Multipart, max_bytes: usize) -> Result<Form, ApiError> {
    let mut form = Form {
        file: None,
        params_json: None,
        fields: Map::new(),
        idempotency_key: None,
    };
    let field_err =
        |e: axum::extract::multipart::MultipartError| body_error(e.status(), e.body_text());
    while let Some(field) = mp.next_field().await.map_err(field_err)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "image" | "file" => {
                if form.file.is_some() {
                    return Err(invalid("send one image per job"));
                }
                // A part without a filename is a text field, not an uploaded file.
                let Some(filename) = field.file_name().map(str::to_owned) else {
                    return Err(invalid(format!(
                        "`{name}` must be a file (a multipart part with a filename), not a text field"
                    )));
                };
                let filename = Some(filename);
                let data = read_limited(field, max_bytes).await?;
                form.file = Some((filename, data));
            }
            "params" => form.params_json = Some(field.text().await.map_err(field_err)?),
            "idempotency_key" => {
                form.idempotency_key = Some(field.text().await.map_err(field_err)?)
            }
            "" => return Err(invalid("a multipart field has no name")),
            _ => {
                let text = field.text().await.map_err(field_err)?;
                // "648" → number, "true" → bool, "240,240,240" stays a string.
                let value = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(|v| !v.is_object())
                    .unwrap_or(Value::String(text));
                form.fields.insert(name, value);
            }
        }
    }
    Ok(form)
}

fn parse_id(id: &str) -> Result<JobId, ApiError> {
    JobId::parse(id).ok_or_else(|| ApiError::not_found("job"))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<JobStatus, ApiError> {
    let id = parse_id(id)?;
    // An admin reads any tenant's job; everyone else only their own (404 otherwise, so ids
    // of other tenants' jobs are not even confirmed to exist).
    let tenant = (!caller.admin).then_some(caller.tenant.as_str());
    state
        .queue
        .status(&id, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))
}

/// Get a job's status
///
/// The status record: `state`, `attempts`, `progress`, timestamps, and the `error` or the
/// `result` (outputs with presigned `url`s, the face found, per-stage `timings_ms`, the
/// `quality` report). A `quality_rejected` error lists its `warnings`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "get_job",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "Job id (UUIDv7)", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"),
    ),
    responses(
        (status = 200, description = "The status record.", body = JobStatus, example = json!({"id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "state": "queued", "attempts": 0, "created_at": "2026-01-05T10:00:00.000Z", "updated_at": "2026-01-05T10:00:00.000Z", "input": {"bucket": "facecraft", "key": "inbox/me.jpg"}, "params": {"width": 648, "height": 648, "background": [240, 240, 240], "transparent": false, "face_margin": 0.3, "eye_line": 0.4, "oval_mask": true, "enhance": true, "enhance_fidelity": 0.7, "formats": ["png", "jpg"], "jpeg_max_bytes": 101376, "face_policy": "largest", "detector": "hog", "segmentation_model": "u2netp", "remove_background": true, "quality": "report"}, "output": {"bucket": "facecraft", "prefix": "results/"}})),
        (status = 404, description = "No such job, or another tenant's.", body = ErrorBody,
            example = json!({"error": "job not found", "code": "not_found"})),
        AuthErrors, BackendUnavailable,
    ),
)]
async fn get_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Json<JobStatus>, ApiError> {
    let mut status = load(&state, &caller, &id).await?;
    if let Some(result) = status.result.as_mut() {
        for out in &mut result.outputs {
            let obj = ObjectRef {
                bucket: out.bucket.clone(),
                key: out.key.clone(),
            };
            out.url = Some(state.store.presign_get(&obj).await?);
        }
    }
    Ok(Json(status))
}

/// Cancel a job
///
/// A queued job is cancelled at once (`200`); a running one stops at its next stage (`202`,
/// `cancel_requested: true`).
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "cancel_job",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "Job id (UUIDv7)", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"),
    ),
    responses(
        (status = 200, description = "Cancelled; the status record.", body = JobStatus),
        (status = 202, description = "Running: cancellation requested; the status record.", body = JobStatus),
        (status = 404, description = "No such job, or another tenant's.", body = ErrorBody,
            example = json!({"error": "job not found", "code": "not_found"})),
        (status = 409, description = "The job has already ended.", body = ErrorBody,
            example = json!({"error": "job already succeeded", "code": "conflict"})),
        AuthErrors, QueueUnavailable,
    ),
)]
async fn cancel_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let job_id = parse_id(&id)?;
    let code = match state.queue.cancel(&job_id, &caller.tenant).await? {
        CancelOutcome::NotFound => return Err(ApiError::not_found("job")),
        CancelOutcome::Cancelled => StatusCode::OK,
        CancelOutcome::Cancelling => StatusCode::ACCEPTED,
        CancelOutcome::AlreadyTerminal(s) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!("job already {}", s.as_str()),
            ))
        }
    };
    tracing::info!(job_id = %job_id, "cancel requested");
    let status = load(&state, &caller, &id).await?;
    Ok((code, Json(status)).into_response())
}

/// Download a result
///
/// Redirects to a presigned S3 URL of the portrait in the format asked for.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/result/{format}",
    tag = "jobs",
    operation_id = "get_result",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "Job id (UUIDv7)", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"),
        ("format" = String, Path, description = "`png`, `jpg` (`jpeg` works too) or `webp`, as the job's `formats` asked", example = "png"),
    ),
    responses(
        (status = 307, description = "Redirect to a presigned GET URL of the result.",
            headers(("Location" = String, description = "Presigned S3 URL"))),
        (status = 404, description = "No such job (or another tenant's), unknown format, or no result in that format.", body = ErrorBody,
            example = json!({"error": "result in that format not found", "code": "not_found"})),
        (status = 409, description = "The job has not succeeded.", body = ErrorBody,
            example = json!({"error": "job is running, not succeeded", "code": "conflict"})),
        AuthErrors, BackendUnavailable,
    ),
)]
async fn get_result(
    State(state): State<Shared>,
    Path((id, format)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let format =
        Format::from_extension(&format).ok_or_else(|| ApiError::not_found("result format"))?;
    let status = load(&state, &caller, &id).await?;
    if status.state != JobState::Succeeded {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("job is {}, not succeeded", status.state.as_str()),
        ));
    }
    let out = status
        .result
        .as_ref()
        .and_then(|r| r.outputs.iter().find(|o| o.format == format))
        .ok_or_else(|| ApiError::not_found("result in that format"))?;
    let url = state
        .store
        .presign_get(&ObjectRef {
            bucket: out.bucket.clone(),
            key: out.key.clone(),
        })
        .await?;
    Ok(Redirect::temporary(&url).into_response())
}

/// Retry a dead or failed job
///
/// Re-queues a dead or failed job (after the operator fixed its cause): same id, same input,
/// attempts reset. The job's own tenant or an admin may do it.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    tag = "jobs",
    operation_id = "retry_job",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "Job id (UUIDv7)", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"),
    ),
    responses(
        (status = 202, description = "Queued again; the status record.", body = JobStatus),
        (status = 404, description = "No such job, or another tenant's.", body = ErrorBody,
            example = json!({"error": "job not found", "code": "not_found"})),
        (status = 409, description = "The job is neither dead nor failed.", body = ErrorBody,
            example = json!({"error": "job is running; only dead or failed jobs can be retried", "code": "conflict"})),
        AuthErrors, QueueUnavailable,
    ),
)]
async fn retry_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let job_id = parse_id(&id)?;
    let tenant = (!caller.admin).then_some(caller.tenant.as_str());
    match state.queue.requeue(&job_id, tenant).await? {
        RequeueOutcome::NotFound => return Err(ApiError::not_found("job")),
        RequeueOutcome::NotRetryable(s) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!(
                    "job is {}; only dead or failed jobs can be retried",
                    s.as_str()
                ),
            ))
        }
        RequeueOutcome::Queued => {}
    }
    tracing::info!(job_id = %job_id, by = %caller.tenant, "job re-queued");
    let status = state
        .queue
        .status(&job_id, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeadQuery {
    /// How many jobs to list, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    #[serde(default)]
    limit: Option<usize>,
}

/// List dead jobs
///
/// The dead stream, oldest first: every tenant's for an admin, one's own otherwise.
#[utoipa::path(
    get,
    path = "/v1/dead",
    tag = "jobs",
    operation_id = "list_dead",
    security(("bearer" = []), ("api_key" = [])),
    params(DeadQuery),
    responses(
        (status = 200, description = "Dead jobs with their last error.", body = DeadList,
            example = json!({"jobs": [{"id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "tenant": "acme", "error": {"code": "worker_crashed", "message": "processing started 5 times without finishing"}, "at": "2026-01-05T10:02:00.000Z"}]})),
        (status = 400, description = "A query string that does not parse, an unknown parameter, or `limit` outside 1-1000.", body = ErrorBody,
            example = json!({"error": "limit must be 1-1000, got 0", "code": "invalid_params"})),
        AuthErrors, QueueUnavailable,
    ),
)]
async fn list_dead(
    State(state): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<DeadQuery>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParams,
            format!("limit must be 1-1000, got {limit}"),
        ));
    }
    let jobs: Vec<_> = state
        .queue
        .dead_jobs(if caller.admin { limit } else { 10_000 })
        .await?
        .into_iter()
        .filter(|d| caller.admin || d.tenant == caller.tenant)
        .take(limit)
        .collect();
    Ok(Json(serde_json::json!({ "jobs": jobs })))
}
