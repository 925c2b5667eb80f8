//! The REST API of the Python service Facecraft replaces (`/api/v1/...`, `/health`, `/ready`,
//! `/status`), on top of the queue: a request enqueues a job and waits for it up to
//! `FACECRAFT_COMPAT_WAIT_SECS`. Unlike the original, failures answer 4xx/5xx, the API key,
//! upload, rate and backlog limits of `/v1` apply, and `background_r` is red.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use facecraft_contract::job::{
    Format, JobId, JobParams, JobState, JobStatus, Lane, ObjectRef, OutputObject, Preset,
    QualityPolicy, QualityReport, QualityWarning, Rgb,
};
use facecraft_contract::ErrorCode;
use facecraft_shared::queue::{CancelOutcome, ForgetOutcome, ModelInfo, WorkerAnnouncement};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::auth::{Caller, CompatCaller, ProcessCaller};
use crate::batches;
use crate::error::{ApiError, CompatError};
use crate::responses::{CompatAuthErrors, CompatBacklogUnavailable};
use crate::schema::{
    BatchUpload, CompatBatchResult, CompatErrorBody, CompatReady, ProcessResult, ProcessUpload,
    QuickUpload,
};
use crate::submit::{self, invalid_params, RESULT_MAX_BYTES};
use crate::{AppState, Probe};

type Shared = Arc<AppState>;

pub(crate) fn router(max_batch_bytes: usize) -> Router<Shared> {
    Router::new()
        .route("/api/v1/process", post(process))
        .route("/api/v1/process/quick", post(quick))
        .route(
            "/api/v1/process/batch",
            post(batch).layer(DefaultBodyLimit::max(max_batch_bytes)),
        )
        .route("/api/v1/download/{job_id}/{format}", get(download))
        .route("/api/v1/jobs/{job_id}", delete(delete_job))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
}

/// The old service's form fields, mapped onto [`JobParams`]. `return_base64` is ours to act on;
/// everything else lands in the job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessForm {
    pub params: JobParams,
    pub return_base64: bool,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    // What FastAPI/pydantic accepted for a bool form field.
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(invalid_params(format!(
            "{name} must be true or false, got `{v}`"
        ))),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, v: &str, what: &str) -> Result<T, ApiError> {
    v.trim()
        .parse()
        .map_err(|_| invalid_params(format!("{name} must be {what}, got `{v}`")))
}

/// `preset` named by a form field; an unknown name is `invalid_params`.
fn parse_preset(v: &str) -> Result<Preset, ApiError> {
    Preset::from_name(v.trim()).ok_or_else(|| {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        invalid_params(format!("unknown preset `{v}`; one of {}", names.join(", ")))
    })
}

fn parse_quality(name: &str, v: &str) -> Result<QualityPolicy, ApiError> {
    serde_json::from_value(Value::String(v.trim().to_owned()))
        .map_err(|_| invalid_params(format!("{name} must be report or strict, got `{v}`")))
}

/// `base` with `preset`'s values for every parameter `base` leaves at its default: what the
/// job contract does for a JSON request that names a preset.
fn with_preset(base: &JobParams, preset: Preset) -> Result<JobParams, ApiError> {
    let internal = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    };
    let defaults = serde_json::to_value(JobParams::default()).map_err(internal)?;
    let mut given = Map::new();
    if let Value::Object(base) = serde_json::to_value(base).map_err(internal)? {
        for (k, v) in base {
            if defaults.get(&k) != Some(&v) {
                given.insert(k, v);
            }
        }
    }
    given.insert("preset".into(), preset.name().into());
    serde_json::from_value(Value::Object(given)).map_err(|e| invalid_params(e.to_string()))
}

/// Maps the form fields `allowed` of the old API onto job parameters, validated. Fields it does
/// not know are refused (the old service ignored them, hiding typos). A `preset` (ours) stands
/// in for the defaults of every field not given, whatever the fields' order.
pub(crate) fn process_form(
    fields: &Map<String, Value>,
    allowed: &[&str],
    base: JobParams,
) -> Result<ProcessForm, ApiError> {
    let mut p = match fields.get("preset") {
        Some(v) if allowed.contains(&"preset") => {
            with_preset(&base, parse_preset(v.as_str().unwrap_or_default())?)?
        }
        _ => base,
    };
    let mut rgb = p.background.0;
    let mut return_base64 = false;
    for (name, value) in fields {
        let v = value.as_str().unwrap_or_default();
        if !allowed.contains(&name.as_str()) {
            return Err(invalid_params(format!(
                "unknown field `{name}`; this endpoint takes {}",
                allowed.join(", ")
            )));
        }
        match name.as_str() {
            "width" => p.width = parse_num(name, v, "an integer")?,
            "height" => p.height = parse_num(name, v, "an integer")?,
            "size" => {
                p.width = parse_num(name, v, "an integer")?;
                p.height = p.width;
            }
            "background_r" => rgb[0] = parse_num(name, v, "an integer 0-255")?,
            "background_g" => rgb[1] = parse_num(name, v, "an integer 0-255")?,
            "background_b" => rgb[2] = parse_num(name, v, "an integer 0-255")?,
            "face_margin" => p.face_margin = parse_num(name, v, "a number")?,
            "use_oval_mask" => p.oval_mask = parse_bool(name, v)?,
            // The old service's face restoration: on, it sends the job to the GPU lane (and
            // keeps our colour enhancement); off, the face is left as it is, colour included.
            "enhance_face" => {
                p.restore = parse_bool(name, v)?;
                p.enhance = p.enhance && p.restore;
            }
            "enhance_fidelity" => p.enhance_fidelity = parse_num(name, v, "a number")?,
            "return_base64" => return_base64 = parse_bool(name, v)?,
            // Applied before the other fields, above.
            "preset" => {}
            "quality" => p.quality = parse_quality(name, v)?,
            _ => return Err(invalid_params(format!("unknown field `{name}`"))),
        }
    }
    p.background = Rgb(rgb);
    submit::validate_params(&p)?;
    Ok(ProcessForm {
        params: p,
        return_base64,
    })
}

const PROCESS_FIELDS: &[&str] = &[
    "width",
    "height",
    "background_r",
    "background_g",
    "background_b",
    "face_margin",
    "use_oval_mask",
    "enhance_face",
    "enhance_fidelity",
    "return_base64",
    "preset",
    "quality",
];
const BATCH_FIELDS: &[&str] = &[
    "width",
    "height",
    "background_r",
    "background_g",
    "background_b",
    "face_margin",
    "use_oval_mask",
    "enhance_face",
    "enhance_fidelity",
    "preset",
    "quality",
];

fn download_url(id: &JobId, format: Format) -> String {
    format!("/api/v1/download/{id}/{}", format.extension())
}

fn result_object(status: &JobStatus, format: Format) -> Option<ObjectRef> {
    status
        .result
        .as_ref()?
        .outputs
        .iter()
        .find(|o| o.format == format)
        .map(|o| ObjectRef {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
        })
}

/// The quality report of a succeeded job, when the worker measured one.
fn quality_report(status: &JobStatus) -> Option<QualityReport> {
    status.result.as_ref()?.quality.clone()
}

/// The quality warnings that failed a job (`quality_rejected`), else none.
fn failure_warnings(status: &JobStatus) -> Vec<QualityWarning> {
    status
        .error
        .as_ref()
        .map(|e| e.warnings.clone())
        .unwrap_or_default()
}

fn processing_time_ms(status: &JobStatus) -> u64 {
    status
        .result
        .as_ref()
        .map_or(0, |r| r.timings_ms.values().sum())
}

/// A job that ended without a result, as an error of its code.
fn ended_error(status: &JobStatus) -> ApiError {
    match status.state {
        JobState::Cancelled => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "the job was cancelled",
        ),
        _ => {
            let (code, message) = status.error.as_ref().map_or(
                (ErrorCode::Internal, "the job ended without a result".into()),
                |e| (e.code, e.message.clone()),
            );
            ApiError::new(submit::failure_status(code), code, message)
        }
    }
}

fn still_running(id: &JobId, wait: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Timeout,
        format!(
            "the job did not end within {} s; it goes on: poll /v1/jobs/{id}, then download /api/v1/download/{id}/png",
            wait.as_secs()
        ),
    )
}

/// A body that is not multipart/form-data: the old API only ever took form uploads.
fn not_multipart(e: MultipartRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        format!("send multipart/form-data with the image in a field named `file` ({e})"),
    )
}

/// How long a client refused for want of a GPU worker should wait before asking again: about
/// what an autoscaler needs to notice the GPU lane and start a worker.
const NO_GPU_RETRY_AFTER_SECS: u64 = 60;

/// The Python-compatible routes answer within `FACECRAFT_COMPAT_WAIT_SECS`, far less than a GPU
/// node takes to start: a restoration job there with no live GPU worker could only end in a
/// timeout, so it is refused at once (503 `no_gpu_worker`), before anything is stored. The
/// asynchronous API (`POST /v1/jobs`) queues such a job and waits for a GPU worker instead.
async fn refuse_without_gpu_worker(state: &AppState, params: &JobParams) -> Result<(), ApiError> {
    if params.lane() != Lane::Gpu {
        return Ok(());
    }
    let alive_until = state
        .queue
        .lane_alive_until(Lane::Gpu)
        .await
        .map_err(ApiError::from)?;
    if alive_until > facecraft_contract::job::now_ms() {
        return Ok(());
    }
    Err(ApiError {
        message: "face restoration (enhance_face=true) needs a GPU worker and none is running; \
                  retry later, or send the job to POST /v1/jobs, which waits for one"
            .into(),
        ..ApiError::unavailable(ErrorCode::NoGpuWorker, NO_GPU_RETRY_AFTER_SECS)
    })
}

/// Stores the one upload of a request, enqueues its job and waits for it to end.
async fn run_one(
    state: &AppState,
    tenant: &str,
    multipart: Result<Multipart, MultipartRejection>,
    allowed: &[&str],
    base: JobParams,
) -> Result<(JobStatus, ProcessForm), CompatError> {
    // Measured from the request's arrival, so the answer comes before the request timeout
    // however long the upload took.
    let deadline = Instant::now() + state.compat_wait;
    let multipart = multipart.map_err(not_multipart)?;
    let form = submit::read_uploads(state, tenant, multipart, &["file", "image"], 1).await?;
    let parsed = match process_form(&form.fields, allowed, base) {
        Ok(p) => p,
        Err(e) => {
            submit::remove_inputs(state, &form.files).await;
            return Err(e.into());
        }
    };
    let Some(upload) = form.files.into_iter().next() else {
        return Err(submit::invalid("send the image in a multipart field named `file`").into());
    };
    if let Err(e) = refuse_without_gpu_worker(state, &parsed.params).await {
        submit::remove_inputs(state, &[upload]).await;
        return Err(e.into());
    }
    let job = submit::new_job(
        state,
        tenant,
        upload.job_id,
        upload.input.clone(),
        parsed.params.clone(),
        None,
    );
    if let Err(e) = state.queue.enqueue(&job).await {
        submit::remove_inputs(state, &[upload]).await;
        return Err(ApiError::from(e).into());
    }
    tracing::info!(job_id = %job.id, tenant = %tenant, "compat job enqueued");
    let waited = submit::wait_for_end(state, &[job.id], tenant, deadline).await?;
    let status = waited.statuses.into_iter().next().flatten();
    match status {
        None => Err(CompatError::from(ApiError::not_found("job")).with_job(job.id)),
        Some(_) if !waited.done => {
            Err(CompatError::from(still_running(&job.id, state.compat_wait)).with_job(job.id))
        }
        Some(s) if s.state == JobState::Succeeded => Ok((s, parsed)),
        Some(s) => Err(CompatError::from(ended_error(&s))
            .with_job(job.id)
            .with_warnings(failure_warnings(&s))),
    }
}

/// Where a result is downloaded, and what the old service said about it, in its field names.
#[derive(Serialize)]
struct CompatResult {
    face_detected: bool,
    face_count: u32,
    face_position: Option<FacePosition>,
    output_size: OutputSize,
    file_size_bytes: u64,
}

#[derive(Serialize)]
struct FacePosition {
    x: i64,
    y: i64,
    width: i64,
    height: i64,
}

#[derive(Serialize)]
struct OutputSize {
    width: u32,
    height: u32,
}

/// The main output: the PNG when there is one (the old service's `download_url`), else the JPEG.
fn main_output(status: &JobStatus) -> Option<&OutputObject> {
    let outputs = &status.result.as_ref()?.outputs;
    outputs
        .iter()
        .find(|o| o.format == Format::Png)
        .or_else(|| outputs.iter().find(|o| o.format == Format::Jpg))
}

fn compat_result(status: &JobStatus) -> Option<CompatResult> {
    let out = main_output(status)?;
    let face = status.result.as_ref()?.face.as_ref();
    // Rounded to whole pixels of the uploaded photo, as the old service reported them.
    let px = |v: f32| v.round() as i64;
    Some(CompatResult {
        face_detected: face.is_some(),
        face_count: face.map_or(0, |f| f.faces_found),
        face_position: face.map(|f| FacePosition {
            x: px(f.bbox.x),
            y: px(f.bbox.y),
            width: px(f.bbox.width),
            height: px(f.bbox.height),
        }),
        output_size: OutputSize {
            width: out.width,
            height: out.height,
        },
        file_size_bytes: out.bytes,
    })
}

#[derive(Serialize)]
struct ProcessResponse {
    success: bool,
    job_id: JobId,
    processing_time_ms: u64,
    png_url: Option<String>,
    jpg_url: Option<String>,
    download_url: Option<String>,
    result: Option<CompatResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    png_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jpg_base64: Option<String>,
    error: Option<String>,
    error_message: Option<String>,
    /// Facecraft's addition: the portrait's quality report.
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<QualityReport>,
}

/// Process a photo (Python-compatible)
///
/// The old service's `POST /api/v1/process`: uploads the photo, enqueues a job and waits for it
/// up to `FACECRAFT_COMPAT_WAIT_SECS`. Failures answer 4xx/5xx with `success: false`.
#[utoipa::path(
    post,
    path = "/api/v1/process",
    tag = "compat",
    operation_id = "compat_process",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = ProcessUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The portrait is ready.", body = ProcessResult,
            example = json!({"success": true, "job_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "processing_time_ms": 1830, "png_url": "http://s3.localhost:8333/facecraft/results/0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b/portrait.png?X-Amz-Signature=...", "jpg_url": "http://s3.localhost:8333/facecraft/results/0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b/portrait.jpg?X-Amz-Signature=...", "error": null, "error_message": null})),
        (status = 400, description = "Bad form field or value, missing file, or the job failed on its input (`no_face_detected`, `unsupported_format`, ...).", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "invalid_params", "error_message": "face_margin must be 0-1, got 9", "detail": "invalid_params"})),
        (status = 401, description = "Missing or unknown API key.", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "unauthorized", "error_message": "send an API key", "detail": "unauthorized"})),
        (status = 413, description = "Upload over `FACECRAFT_MAX_UPLOAD_BYTES`.", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "payload_too_large", "error_message": "request body is over the size limit", "detail": "payload_too_large"})),
        (status = 415, description = "Not multipart/form-data.", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "unsupported_media_type", "error_message": "send multipart/form-data with the image in a field named `file`", "detail": "unsupported_media_type"})),
        (status = 429, description = "The API key's rate limit is used up; see `Retry-After`.", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "rate_limited", "error_message": "rate limit of this API key exceeded; retry later", "detail": "rate_limited"})),
        (status = 500, description = "A bug; details only in the server logs.", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "internal", "error_message": "internal error", "detail": "internal"})),
        (status = 503, description = "Backlog full or Redis/S3 unreachable; see `Retry-After`.", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "queue_full", "error_message": "the queue is full; retry later", "detail": "queue_full"})),
        (status = 504, description = "The job did not end within `FACECRAFT_COMPAT_WAIT_SECS`; it keeps running: poll `Location`.", body = ProcessResult, example = json!({"success": false, "job_id": null, "processing_time_ms": null, "png_url": null, "jpg_url": null, "error": "timeout", "error_message": "the job did not end in time", "detail": "timeout"})),
    ),
)]
async fn process(
    State(state): State<Shared>,
    ProcessCaller(caller): ProcessCaller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<ProcessResponse>, CompatError> {
    let (status, form) = run_one(
        &state,
        &caller.tenant,
        multipart,
        PROCESS_FIELDS,
        JobParams::default(),
    )
    .await
    .map_err(CompatError::process)?;
    let id = status.id;
    let png = result_object(&status, Format::Png);
    let jpg = result_object(&status, Format::Jpg);
    let mut resp = ProcessResponse {
        success: true,
        job_id: id,
        processing_time_ms: processing_time_ms(&status),
        png_url: png.as_ref().map(|_| download_url(&id, Format::Png)),
        jpg_url: jpg.as_ref().map(|_| download_url(&id, Format::Jpg)),
        download_url: main_output(&status).map(|o| download_url(&id, o.format)),
        result: compat_result(&status),
        png_base64: None,
        jpg_base64: None,
        error: None,
        error_message: None,
        quality: quality_report(&status),
    };
    if form.return_base64 {
        let b64 = base64::engine::general_purpose::STANDARD;
        let read = |o: ObjectRef| {
            let state = state.clone();
            async move { state.store.get(&o, RESULT_MAX_BYTES).await }
        };
        if let Some(o) = png {
            let bytes = read(o)
                .await
                .map_err(|e| CompatError::from(e).with_job(id).process())?;
            resp.png_base64 = Some(b64.encode(&bytes));
        }
        if let Some(o) = jpg {
            let bytes = read(o)
                .await
                .map_err(|e| CompatError::from(e).with_job(id).process())?;
            resp.jpg_base64 = Some(b64.encode(&bytes));
        }
    }
    Ok(Json(resp))
}

/// `file`, `size` → the PNG itself.
/// Quick portrait as PNG (Python-compatible)
///
/// `file` and `size` (648) → the square PNG itself, header `X-Job-Id`.
#[utoipa::path(
    post,
    path = "/api/v1/process/quick",
    tag = "compat",
    operation_id = "compat_quick",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = QuickUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The PNG portrait.", content_type = "image/png", body = Vec<u8>,
            headers(("X-Job-Id" = String, description = "The job's id"))),
        (status = 400, description = "Bad field, missing file, or the job failed on its input.", body = CompatErrorBody,
            example = json!({"detail": "no_face_detected", "message": "no face found in the photo", "job_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"})),
        (status = 413, description = "Upload over `FACECRAFT_MAX_UPLOAD_BYTES`.", body = CompatErrorBody, example = json!({"detail": "payload_too_large", "message": "request body is over the size limit"})),
        (status = 415, description = "Not multipart/form-data.", body = CompatErrorBody, example = json!({"detail": "unsupported_media_type", "message": "send multipart/form-data with the image in a field named `file`"})),
        (status = 504, description = "Not ended within `FACECRAFT_COMPAT_WAIT_SECS`; poll `Location`.", body = CompatErrorBody, example = json!({"detail": "timeout", "message": "the job did not end in time", "job_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"})),
        CompatAuthErrors, CompatBacklogUnavailable,
    ),
)]
async fn quick(
    State(state): State<Shared>,
    CompatCaller(caller): CompatCaller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, CompatError> {
    let base = JobParams {
        formats: vec![Format::Png],
        ..JobParams::default()
    };
    let (status, _) = run_one(&state, &caller.tenant, multipart, &["size"], base).await?;
    let obj = result_object(&status, Format::Png)
        .ok_or_else(|| ApiError::not_found("PNG result"))
        .map_err(|e| CompatError::from(e).with_job(status.id))?;
    let bytes = state
        .store
        .get(&obj, RESULT_MAX_BYTES)
        .await
        .map_err(|e| CompatError::from(e).with_job(status.id))?;
    let mut resp = ([(header::CONTENT_TYPE, "image/png")], bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&status.id.to_string()) {
        resp.headers_mut().insert("x-job-id", v);
    }
    Ok(resp)
}

#[derive(Serialize)]
struct BatchItem {
    filename: Option<String>,
    success: bool,
    job_id: JobId,
    state: &'static str,
    png_url: Option<String>,
    jpg_url: Option<String>,
    download_url: Option<String>,
    error: Option<&'static str>,
    error_message: Option<String>,
    /// Facecraft's addition: the portrait's quality report, for a succeeded file.
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<QualityReport>,
    /// Facecraft's addition: the warnings that failed a `quality=strict` file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<QualityWarning>,
}

/// Repeated `files` (also `file`, `image`) with shared parameters. Answers 200 with one result
/// per file once every job ended (a failed file is `success: false` in its item), or 504 with
/// the batch id and the items so far when the wait runs out.
#[utoipa::path(
    post,
    path = "/api/v1/process/batch",
    tag = "compat",
    operation_id = "compat_batch",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = BatchUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Every job ended; one item per file (a failed file is `success: false`).", body = CompatBatchResult,
            example = json!({"success": true, "batch_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "total": 1, "successful": 1, "failed": 0, "pending": 0, "results": [{"filename": "a.jpg", "success": true, "job_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5c", "state": "succeeded", "png_url": "http://s3.localhost:8333/facecraft/results/0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5c/portrait.png?X-Amz-Signature=...", "jpg_url": null, "error": null, "error_message": null}]})),
        (status = 400, description = "Bad field, no files, or more than `FACECRAFT_MAX_BATCH_SIZE`.", body = CompatErrorBody, example = json!({"detail": "invalid_params", "message": "a batch holds 1-50 files"})),
        (status = 413, description = "Body over `FACECRAFT_MAX_BATCH_BYTES`.", body = CompatErrorBody, example = json!({"detail": "payload_too_large", "message": "request body is over the size limit"})),
        (status = 415, description = "Not multipart/form-data.", body = CompatErrorBody, example = json!({"detail": "unsupported_media_type", "message": "send multipart/form-data with the image in a field named `file`"})),
        (status = 504, description = "Not every job ended in time: the items so far; poll `Location` (`/v1/batches/{id}`).", body = CompatBatchResult,
            example = json!({"success": false, "batch_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "total": 2, "successful": 1, "failed": 0, "pending": 1, "results": [{"filename": "a.jpg", "success": true, "job_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5c", "state": "succeeded", "png_url": "http://s3.localhost:8333/facecraft/results/0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5c/portrait.png?X-Amz-Signature=...", "jpg_url": null, "error": null, "error_message": null}]})),
        CompatAuthErrors, CompatBacklogUnavailable,
    ),
)]
async fn batch(
    State(state): State<Shared>,
    CompatCaller(Caller { tenant, .. }): CompatCaller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, CompatError> {
    let started = Instant::now();
    let deadline = started + state.compat_wait;
    let multipart = multipart.map_err(not_multipart)?;
    let form = submit::read_uploads(
        &state,
        &tenant,
        multipart,
        &["files", "file", "image"],
        state.max_batch_size,
    )
    .await?;
    let parsed = match process_form(&form.fields, BATCH_FIELDS, JobParams::default()) {
        Ok(p) => p,
        Err(e) => {
            submit::remove_inputs(&state, &form.files).await;
            return Err(e.into());
        }
    };
    if form.files.is_empty() {
        return Err(submit::invalid("send the images in multipart fields named `files`").into());
    }
    if let Err(e) = refuse_without_gpu_worker(&state, &parsed.params).await {
        submit::remove_inputs(&state, &form.files).await;
        return Err(e.into());
    }
    let created = batches::create(&state, &tenant, form.files, parsed.params, None).await?;
    let ids: Vec<JobId> = created.jobs.iter().map(|j| j.id).collect();
    let waited = submit::wait_for_end(&state, &ids, &tenant, deadline).await?;
    let mut items = Vec::with_capacity(ids.len());
    for (entry, status) in created.jobs.iter().zip(&waited.statuses) {
        let (state_name, success, error, message) = match status {
            None => ("expired", false, Some(ErrorCode::NotFound.as_str()), None),
            Some(s) if s.state == JobState::Succeeded => (s.state.as_str(), true, None, None),
            Some(s) if s.state.is_terminal() => {
                let e = ended_error(s);
                (
                    s.state.as_str(),
                    false,
                    Some(e.code.as_str()),
                    Some(e.message),
                )
            }
            Some(s) => (s.state.as_str(), false, None, None),
        };
        let url = |f: Format| {
            status
                .as_ref()
                .and_then(|s| result_object(s, f))
                .map(|_| download_url(&entry.id, f))
        };
        items.push(BatchItem {
            filename: entry.filename.clone(),
            success,
            job_id: entry.id,
            state: state_name,
            png_url: url(Format::Png),
            jpg_url: url(Format::Jpg),
            download_url: status
                .as_ref()
                .and_then(main_output)
                .map(|o| download_url(&entry.id, o.format)),
            error,
            error_message: message,
            quality: status.as_ref().and_then(quality_report),
            warnings: status.as_ref().map(failure_warnings).unwrap_or_default(),
        });
    }
    let successful = items.iter().filter(|i| i.success).count();
    let failed = items
        .iter()
        .filter(|i| !i.success && i.error.is_some())
        .count();
    let body = json!({
        "success": waited.done && failed == 0,
        // The old service's name for the batch's id; `batch_id` is ours.
        "job_id": created.id,
        "batch_id": created.id,
        "processing_time_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "total": items.len(),
        "successful": successful,
        "failed": failed,
        "pending": items.len() - successful - failed,
        "results": items,
    });
    let code = if waited.done {
        StatusCode::OK
    } else {
        StatusCode::GATEWAY_TIMEOUT
    };
    let mut resp = (code, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/batches/{}", created.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The result bytes of one of the caller's jobs.
/// Download a result (Python-compatible)
///
/// The PNG or JPEG bytes of a succeeded job, as an attachment.
#[utoipa::path(
    get,
    path = "/api/v1/download/{job_id}/{format}",
    tag = "compat",
    operation_id = "compat_download",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("job_id" = String, Path, description = "Job id", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"),
        ("format" = String, Path, description = "`png` or `jpg`", example = "png"),
    ),
    responses(
        (status = 200, description = "The image.", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No such job (or another tenant's) or format.", body = CompatErrorBody, example = json!({"detail": "not_found", "message": "job not found"})),
        (status = 409, description = "The job has not succeeded.", body = CompatErrorBody, example = json!({"detail": "conflict", "message": "job is running, not succeeded"})),
        (status = 503, description = "Redis or S3 unreachable; see `Retry-After`.", body = CompatErrorBody, example = json!({"detail": "storage_unavailable", "message": "a backing service is unavailable; retry later"})),
        CompatAuthErrors,
    ),
)]
async fn download(
    State(state): State<Shared>,
    Path((job_id, format)): Path<(String, String)>,
    CompatCaller(caller): CompatCaller,
) -> Result<Response, CompatError> {
    let format = Format::from_extension(&format)
        .ok_or_else(|| ApiError::not_found("result format (png or jpg)"))?;
    let id = JobId::parse(&job_id).ok_or_else(|| ApiError::not_found("job"))?;
    let tenant = (!caller.admin).then_some(caller.tenant.as_str());
    let status = state
        .queue
        .status(&id, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if status.state != JobState::Succeeded {
        return Err(CompatError::from(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("job is {}, not succeeded", status.state.as_str()),
        ))
        .with_job(id));
    }
    let obj = result_object(&status, format).ok_or_else(|| ApiError::not_found("result"))?;
    let bytes = state.store.get(&obj, RESULT_MAX_BYTES).await?;
    let disposition = format!(
        "attachment; filename=\"portrait_{id}.{}\"",
        format.extension()
    );
    let mut resp = ([(header::CONTENT_TYPE, format.content_type())], bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Cancels a waiting or running job; deletes an ended job's results, its upload and its record.
#[utoipa::path(
    delete,
    path = "/api/v1/jobs/{job_id}",
    tag = "compat",
    operation_id = "compat_delete_job",
    security(("bearer" = []), ("api_key" = [])),
    params(("job_id" = String, Path, description = "Job id", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b")),
    responses(
        (status = 200, description = "Cancelled (queued) or deleted (ended: results, upload and record).", body = Object, example = json!({"success": true, "job_id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "status": "deleted"})),
        (status = 202, description = "Running: it stops at its next stage.", body = Object),
        (status = 404, description = "No such job, or another tenant's.", body = CompatErrorBody, example = json!({"detail": "not_found", "message": "job not found"})),
        (status = 409, description = "The job cannot be deleted in its state.", body = CompatErrorBody, example = json!({"detail": "conflict", "message": "job is running"})),
        (status = 503, description = "Redis or S3 unreachable; see `Retry-After`.", body = CompatErrorBody, example = json!({"detail": "queue_unavailable", "message": "a backing service is unavailable; retry later"})),
        CompatAuthErrors,
    ),
)]
async fn delete_job(
    State(state): State<Shared>,
    Path(job_id): Path<String>,
    CompatCaller(Caller { tenant, .. }): CompatCaller,
) -> Result<Response, CompatError> {
    let id = JobId::parse(&job_id).ok_or_else(|| ApiError::not_found("job"))?;
    let status = state
        .queue
        .status(&id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found("job"))?;
    if !status.state.is_terminal() {
        let (code, what) = match state.queue.cancel(&id, &tenant).await? {
            CancelOutcome::NotFound => return Err(ApiError::not_found("job").into()),
            CancelOutcome::Cancelled => (StatusCode::OK, "cancelled"),
            CancelOutcome::Cancelling => (StatusCode::ACCEPTED, "cancelling"),
            // It ended meanwhile; the client may delete it again.
            CancelOutcome::AlreadyTerminal(s) => (StatusCode::CONFLICT, s.as_str()),
        };
        let body = json!({"success": code != StatusCode::CONFLICT, "job_id": id, "status": what});
        return Ok((code, Json(body)).into_response());
    }
    let mut objects: Vec<ObjectRef> = status
        .result
        .iter()
        .flat_map(|r| &r.outputs)
        .map(|o| ObjectRef {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
        })
        .collect();
    // Only uploads the API stored for this job; never an input the client referenced itself.
    if status
        .input
        .key
        .starts_with(&format!("uploads/{tenant}/{id}/"))
    {
        objects.push(status.input.clone());
    }
    for o in &objects {
        state.store.delete(o).await?;
    }
    match state.queue.forget(&id, &tenant).await? {
        ForgetOutcome::NotFound => Err(ApiError::not_found("job").into()),
        ForgetOutcome::NotTerminal(s) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!("job is {}", s.as_str()),
        )
        .into()),
        ForgetOutcome::Forgotten => {
            tracing::info!(job_id = %id, "compat delete: job and results removed");
            Ok(Json(json!({"success": true, "job_id": id, "status": "deleted"})).into_response())
        }
    }
}

/// Liveness (Python-compatible)
#[utoipa::path(
    get,
    path = "/health",
    tag = "compat",
    operation_id = "compat_health",
    responses((status = 200, description = "Alive.", body = Object, example = json!({"status": "healthy", "version": "0.1.0"}))),
)]
async fn health() -> Json<Value> {
    Json(json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION")}))
}

/// Ready when Redis and S3 answer; workers are not required (they may scale from zero).
#[utoipa::path(
    get,
    path = "/ready",
    tag = "compat",
    operation_id = "compat_ready",
    responses(
        (status = 200, description = "Redis and S3 answer.", body = CompatReady, example = json!({"ready": true, "models_loaded": true, "status": "ready", "redis": "ok", "s3": "ok", "lanes": {"cpu": true, "gpu": false}})),
        (status = 503, description = "Redis or S3 does not answer (a readiness report, not an error body).", body = CompatReady, example = json!({"ready": false, "models_loaded": false, "status": "not_ready", "redis": "ok", "s3": "unavailable", "lanes": {"cpu": null, "gpu": null}})),
    ),
)]
async fn ready(State(state): State<Shared>) -> Response {
    let (r, workers) = tokio::join!(state.readiness(), state.queue.live_workers());
    // Models live in the workers: loaded when a worker alive now announced any.
    let models_loaded = workers
        .as_ref()
        .is_ok_and(|w| w.iter().any(|w| !w.models.is_empty()));
    let body = json!({
        "ready": r.ok(),
        "models_loaded": models_loaded,
        "status": if r.ok() { "ready" } else { "not_ready" },
        "redis": Probe::word(r.redis),
        "s3": Probe::word(r.s3),
        "lanes": crate::routes::health::lanes_served(&workers),
    });
    (r.status(), Json(body)).into_response()
}

/// Version, uptime, the workers the group has seen and the real mean processing time.
#[utoipa::path(
    get,
    path = "/status",
    tag = "compat",
    operation_id = "compat_status",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Version, uptime, workers seen (`XINFO CONSUMERS`), queue figures, the mean processing time of succeeded jobs, and the old service's `device`, `models` (from the live workers' announcements) and `statistics`.", body = Object,
            example = json!({"status": "ok", "version": "0.1.0", "uptime_seconds": 3600, "workers": {"seen": 2, "active": 2, "consumers": [{"name": "worker-a", "pending": 1, "idle_ms": 120}]}, "queue": {"stream_len": 3, "pending": 1, "delayed": 0, "dead": 0}, "lanes": {"cpu": {"workers": 2, "stream_len": 3, "pending": 1, "delayed": 0}, "gpu": {"workers": 0, "stream_len": 0, "pending": 0, "delayed": 0}}, "jobs": {"succeeded": 120, "failed": 4, "average_processing_time_ms": 1830}, "device": {"type": "cpu", "name": "AMD EPYC 7B13", "cuda_version": null}, "models": {"hog": {"loaded": true, "type": "detection"}, "dlib68": {"loaded": true, "type": "landmarks"}, "u2netp": {"loaded": true, "type": "segmentation"}}, "statistics": {"total_processed": 124, "success_rate": 0.9677, "avg_processing_ms": 1830}})),
        (status = 503, description = "Redis unreachable; see `Retry-After`.", body = CompatErrorBody, example = json!({"detail": "queue_unavailable", "message": "a backing service is unavailable; retry later"})),
        CompatAuthErrors,
    ),
)]
async fn status(State(state): State<Shared>, _: CompatCaller) -> Result<Json<Value>, CompatError> {
    let (workers, finished, queue, gpu_queue, live) = tokio::join!(
        state.queue.workers(),
        state.queue.finished_stats(),
        state.queue.lane_stats(Lane::Cpu),
        state.queue.lane_stats(Lane::Gpu),
        state.queue.live_workers()
    );
    let (workers, finished, queue, gpu_queue, live) =
        (workers?, finished?, queue?, gpu_queue?, live?);
    let per_lane = crate::routes::health::lane_workers(&live);
    let lane = |l: Lane, stats: &facecraft_shared::queue::QueueStats| {
        json!({
            "workers": per_lane.get(&l).copied().unwrap_or(0),
            "stream_len": stats.stream_len,
            "pending": stats.pending,
            "delayed": stats.delayed,
        })
    };
    let total = finished.succeeded + finished.failed;
    // A living worker reads or renews its lease well within the lease timeout.
    let lease = state.queue.settings().lease_timeout_ms;
    let active = workers.iter().filter(|w| w.idle_ms < lease).count();
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "workers": {
            "seen": workers.len(),
            "active": active,
            "consumers": workers,
        },
        "queue": queue,
        // Live workers (announced) and figures per lane; `queue` above is the CPU lane's.
        "lanes": {
            "cpu": lane(Lane::Cpu, &queue),
            "gpu": lane(Lane::Gpu, &gpu_queue),
        },
        "jobs": {
            "succeeded": finished.succeeded,
            "failed": finished.failed,
            "average_processing_time_ms": finished.average_ms(),
        },
        "device": fleet_device(&live),
        "models": fleet_models(&live),
        "statistics": {
            "total_processed": total,
            // A fraction (0-1) of the jobs that ended succeeded or failed; null before any.
            "success_rate": (total > 0).then(|| finished.succeeded as f64 / total as f64),
            "avg_processing_ms": finished.average_ms(),
        },
    })))
}

/// The old service's `device`, for a fleet: the device every live worker reports, `mixed` when
/// they differ (then each worker's is in `devices`), `none` without a live worker.
fn fleet_device(live: &[WorkerAnnouncement]) -> Value {
    let Some(first) = live.first() else {
        return json!({"type": "none", "name": null, "cuda_version": null});
    };
    if live.iter().all(|w| w.device == first.device) {
        return json!(first.device);
    }
    json!({
        "type": "mixed",
        "name": null,
        "cuda_version": null,
        "devices": live
            .iter()
            .map(|w| json!({"worker": w.name, "device": w.device}))
            .collect::<Vec<_>>(),
    })
}

/// The old service's `models`: every model a live worker holds, with its role.
fn fleet_models(live: &[WorkerAnnouncement]) -> Value {
    let mut models: BTreeMap<&str, &ModelInfo> = BTreeMap::new();
    for w in live {
        for (name, info) in &w.models {
            models.entry(name).or_insert(info);
        }
    }
    json!(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect()
    }

    #[test]
    fn old_fields_map_onto_job_params() {
        let f = process_form(
            &fields(&[
                ("width", "600"),
                ("height", "800"),
                ("background_r", "255"),
                ("background_g", "10"),
                ("background_b", "0"),
                ("face_margin", "0.5"),
                ("use_oval_mask", "false"),
                ("enhance_face", "False"),
                ("enhance_fidelity", "0.2"),
                ("return_base64", "true"),
            ]),
            PROCESS_FIELDS,
            JobParams::default(),
        )
        .unwrap();
        assert_eq!((f.params.width, f.params.height), (600, 800));
        assert_eq!(f.params.background, Rgb([255, 10, 0]), "r stays red");
        assert!((f.params.face_margin - 0.5).abs() < 1e-6);
        assert!(!f.params.oval_mask && !f.params.enhance && !f.params.restore);
        assert!((f.params.enhance_fidelity - 0.2).abs() < 1e-6);
        assert!(f.return_base64);
        assert_eq!(f.params.formats, vec![Format::Png, Format::Jpg]);
    }

    #[test]
    fn defaults_are_the_old_services() {
        let f = process_form(&Map::new(), PROCESS_FIELDS, JobParams::default()).unwrap();
        assert_eq!(f.params, JobParams::default());
        assert!(!f.return_base64);
    }

    #[test]
    fn enhance_face_true_asks_for_restoration_and_keeps_colour_enhancement() {
        let f = process_form(
            &fields(&[("enhance_face", "true")]),
            PROCESS_FIELDS,
            JobParams::default(),
        )
        .unwrap();
        assert!(f.params.restore && f.params.enhance);
        assert_eq!(f.params.lane(), facecraft_contract::job::Lane::Gpu);
    }

    #[test]
    fn bad_values_and_unknown_fields_are_refused() {
        for (k, v) in [
            ("width", "-1"),
            ("width", "10"),
            ("height", "abc"),
            ("background_r", "256"),
            ("face_margin", "3"),
            ("face_margin", "NaN"),
            ("enhance_fidelity", "1.5"),
            ("use_oval_mask", "maybe"),
            ("colour", "red"),
        ] {
            let e =
                process_form(&fields(&[(k, v)]), PROCESS_FIELDS, JobParams::default()).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidParams),
                "{k}={v}"
            );
        }
        // `size` belongs to the quick endpoint only.
        assert!(process_form(
            &fields(&[("size", "300")]),
            PROCESS_FIELDS,
            JobParams::default()
        )
        .is_err());
        let q = process_form(&fields(&[("size", "300")]), &["size"], JobParams::default()).unwrap();
        assert_eq!((q.params.width, q.params.height), (300, 300));
    }

    #[test]
    fn a_preset_fills_in_the_fields_not_given() {
        for allowed in [PROCESS_FIELDS, BATCH_FIELDS] {
            let f = process_form(
                &fields(&[("preset", "passport")]),
                allowed,
                JobParams::default(),
            )
            .unwrap();
            assert_eq!(f.params, Preset::Passport.params());
        }
        // Fields given win over the preset, whichever comes first in the form.
        let f = process_form(
            &fields(&[
                ("width", "700"),
                ("preset", "us_visa"),
                ("background_r", "10"),
                ("quality", "strict"),
            ]),
            PROCESS_FIELDS,
            JobParams::default(),
        )
        .unwrap();
        assert_eq!(f.params.preset, Some(Preset::UsVisa));
        assert_eq!((f.params.width, f.params.height), (700, 600));
        assert_eq!(
            f.params.background,
            Rgb([10, 255, 255]),
            "the preset's white"
        );
        assert!(!f.params.oval_mask);
        assert_eq!(f.params.quality, QualityPolicy::Strict);
        let f = process_form(
            &fields(&[("quality", "report")]),
            BATCH_FIELDS,
            JobParams::default(),
        )
        .unwrap();
        assert_eq!(f.params.quality, QualityPolicy::Report);
        assert_eq!(f.params.preset, None);
        // What the endpoint itself sets (the quick PNG) stays.
        let base = JobParams {
            formats: vec![Format::Png],
            ..JobParams::default()
        };
        let p = with_preset(&base, Preset::Badge).unwrap();
        assert_eq!(p.formats, vec![Format::Png]);
        assert_eq!((p.width, p.height), (480, 640));
    }

    #[test]
    fn an_unknown_preset_or_quality_is_invalid_params() {
        for (k, v, says) in [
            (
                "preset",
                "visa",
                "unknown preset `visa`; one of ad, passport, us_visa, badge",
            ),
            ("preset", "", "unknown preset"),
            ("quality", "lenient", "quality must be report or strict"),
        ] {
            let e =
                process_form(&fields(&[(k, v)]), PROCESS_FIELDS, JobParams::default()).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidParams),
                "{k}={v}"
            );
            assert!(e.message.contains(says), "{k}={v}: {}", e.message);
        }
        // The quick endpoint takes `size` only.
        let e = process_form(
            &fields(&[("preset", "ad")]),
            &["size"],
            JobParams::default(),
        )
        .unwrap_err();
        assert!(
            e.message.contains("unknown field `preset`"),
            "{}",
            e.message
        );
    }
}
