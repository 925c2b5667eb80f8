//! The REST API of the Python service Facecraft replaces (`/api/v1/...`, `/health`, `/ready`,
//! `/status`), on top of the queue: a request enqueues a job and waits for it up to
//! `FACECRAFT_COMPAT_WAIT_SECS`. Unlike the original, failures answer 4xx/5xx, the API key,
//! upload, rate and backlog limits of `/v1` apply, and `background_r` is red.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use facecraft_shared::job::{Format, JobId, JobParams, JobState, JobStatus, ObjectRef, Rgb};
use facecraft_shared::queue::{CancelOutcome, ForgetOutcome};
use facecraft_shared::ErrorCode;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::batches;
use crate::error::ApiError;
use crate::submit::{self, invalid_params, RESULT_MAX_BYTES};
use crate::AppState;

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

impl From<facecraft_shared::queue::QueueError> for CompatError {
    fn from(e: facecraft_shared::queue::QueueError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<facecraft_shared::store::StoreError> for CompatError {
    fn from(e: facecraft_shared::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl CompatError {
    fn with_job(mut self, id: JobId) -> Self {
        self.job_id = Some(id);
        self
    }

    fn process(mut self) -> Self {
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

/// Maps the form fields `allowed` of the old API onto job parameters, validated. Fields it does
/// not know are refused (the old service ignored them, hiding typos).
pub(crate) fn process_form(
    fields: &Map<String, Value>,
    allowed: &[&str],
    base: JobParams,
) -> Result<ProcessForm, ApiError> {
    let mut p = base;
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
            "enhance_face" => p.enhance = parse_bool(name, v)?,
            "enhance_fidelity" => p.enhance_fidelity = parse_num(name, v, "a number")?,
            "return_base64" => return_base64 = parse_bool(name, v)?,
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

/// Stores the one upload of a request, enqueues its job and waits for it to end.
async fn run_one(
    state: &AppState,
    headers: &HeaderMap,
    multipart: Multipart,
    allowed: &[&str],
    base: JobParams,
) -> Result<(JobStatus, ProcessForm), CompatError> {
    // Measured from the request's arrival, so the answer comes before the request timeout
    // however long the upload took.
    let deadline = Instant::now() + state.compat_wait;
    let tenant = state.auth.caller(headers)?.tenant;
    let form = submit::read_uploads(state, &tenant, multipart, &["file", "image"], 1).await?;
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
    let job = submit::new_job(
        state,
        &tenant,
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
    let waited = submit::wait_for_end(state, &[job.id], &tenant, deadline).await?;
    let status = waited.statuses.into_iter().next().flatten();
    match status {
        None => Err(CompatError::from(ApiError::not_found("job")).with_job(job.id)),
        Some(_) if !waited.done => {
            Err(CompatError::from(still_running(&job.id, state.compat_wait)).with_job(job.id))
        }
        Some(s) if s.state == JobState::Succeeded => Ok((s, parsed)),
        Some(s) => Err(CompatError::from(ended_error(&s)).with_job(job.id)),
    }
}

#[derive(Serialize)]
struct ProcessResponse {
    success: bool,
    job_id: JobId,
    processing_time_ms: u64,
    png_url: Option<String>,
    jpg_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    png_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jpg_base64: Option<String>,
    error: Option<String>,
    error_message: Option<String>,
}

async fn process(
    State(state): State<Shared>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Json<ProcessResponse>, CompatError> {
    let (status, form) = run_one(
        &state,
        &headers,
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
        png_base64: None,
        jpg_base64: None,
        error: None,
        error_message: None,
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
async fn quick(
    State(state): State<Shared>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, CompatError> {
    let base = JobParams {
        formats: vec![Format::Png],
        ..JobParams::default()
    };
    let (status, _) = run_one(&state, &headers, multipart, &["size"], base).await?;
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
    error: Option<&'static str>,
    error_message: Option<String>,
}

/// Repeated `files` (also `file`, `image`) with shared parameters. Answers 200 with one result
/// per file once every job ended (a failed file is `success: false` in its item), or 504 with
/// the batch id and the items so far when the wait runs out.
async fn batch(
    State(state): State<Shared>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, CompatError> {
    let deadline = Instant::now() + state.compat_wait;
    let tenant = state.auth.caller(&headers)?.tenant;
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
            error,
            error_message: message,
        });
    }
    let successful = items.iter().filter(|i| i.success).count();
    let failed = items
        .iter()
        .filter(|i| !i.success && i.error.is_some())
        .count();
    let body = json!({
        "success": waited.done && failed == 0,
        "batch_id": created.id,
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
async fn download(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((job_id, format)): Path<(String, String)>,
) -> Result<Response, CompatError> {
    let caller = state.auth.caller(&headers)?;
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
async fn delete_job(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Result<Response, CompatError> {
    let tenant = state.auth.caller(&headers)?.tenant;
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

async fn health() -> Json<Value> {
    Json(json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION")}))
}

/// Ready when Redis and S3 answer; workers are not required (they may scale from zero).
async fn ready(State(state): State<Shared>) -> Response {
    let (redis, s3) = tokio::join!(state.queue.ping(), state.store.check());
    let ok = redis.is_ok() && s3.is_ok();
    let body = json!({
        "ready": ok,
        "status": if ok { "ready" } else { "not_ready" },
        "redis": if redis.is_ok() { "ok" } else { "unavailable" },
        "s3": if s3.is_ok() { "ok" } else { "unavailable" },
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Version, uptime, the workers the group has seen and the real mean processing time.
async fn status(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, CompatError> {
    state.auth.caller(&headers)?;
    let (workers, finished, queue) = tokio::join!(
        state.queue.workers(),
        state.queue.finished_stats(),
        state.queue.stats()
    );
    let (workers, finished, queue) = (workers?, finished?, queue?);
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
        "jobs": {
            "succeeded": finished.succeeded,
            "failed": finished.failed,
            "average_processing_time_ms": finished.average_ms(),
        },
    })))
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
        assert!(!f.params.oval_mask && !f.params.enhance);
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
}
