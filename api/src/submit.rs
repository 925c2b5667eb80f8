//! Creating jobs from uploads and waiting for them to end: what the batch endpoints and the
//! Python-compatible endpoints share. Uploads go to S3 one file at a time as they arrive, so a
//! batch never holds more than one file in memory.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::Multipart;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use facecraft_contract::job::{
    default_output_prefix, now_ms, validate_bucket, validate_prefix, Job, JobId, JobParams,
    JobStatus, ObjectRef, OutputSpec,
};
use facecraft_contract::ErrorCode;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::AppState;

/// Largest result object the API reads back to answer with its bytes (`/api/v1/process/quick`,
/// downloads, base64, zips). A 4096×4096 RGBA PNG is at most 64 MiB before compression.
pub(crate) const RESULT_MAX_BYTES: u64 = 128 * 1024 * 1024;

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidRequest, message)
}

pub(crate) fn invalid_params(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidParams, message)
}

pub(crate) fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            ErrorCode::PayloadTooLarge,
            "request body is over the size limit",
        )
    } else {
        invalid(text)
    }
}

fn field_error(e: MultipartError) -> ApiError {
    body_error(e.status(), e.body_text())
}

pub(crate) fn too_large(bytes: usize, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the image is over the {limit}-byte limit (at least {bytes} bytes)"),
    )
}

/// Same rules as the uploads of `POST /v1/jobs`: the last path segment, a safe alphabet.
pub(crate) fn sanitize_filename(name: Option<&str>) -> String {
    let cleaned: String = name
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "input".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// Where an uploaded file of `tenant` waits for the job `id` it runs as.
pub(crate) fn upload_ref(
    state: &AppState,
    tenant: &str,
    id: &JobId,
    filename: Option<&str>,
) -> ObjectRef {
    ObjectRef {
        bucket: state.store.bucket().to_owned(),
        key: format!("uploads/{tenant}/{id}/{}", sanitize_filename(filename)),
    }
}

/// The input photo in S3.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InputRef {
    /// Default: the configured bucket; others only if `FACECRAFT_ALLOWED_BUCKETS` lists them.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    bucket: Option<String>,
    /// Object key; no leading `/`, no `.` or `..` segments, no control characters.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^(?:[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.\.[^/\x00-\x1F\x7F-\x9F]+)(?:/(?:[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.\.[^/\x00-\x1F\x7F-\x9F]+)?)*$"
    )]
    key: String,
}

impl InputRef {
    /// The object, in the configured bucket unless the request names one (checked later,
    /// with the key).
    pub(crate) fn resolve(self, state: &AppState) -> ObjectRef {
        ObjectRef {
            bucket: self
                .bucket
                .unwrap_or_else(|| state.store.bucket().to_owned()),
            key: self.key,
        }
    }
}

/// Where results go: `{prefix}{id}/portrait.{png,jpg}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputRequest {
    /// Default: the configured bucket.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    bucket: Option<String>,
    /// Empty, or ending with `/`. Default `results/`.
    #[serde(default)]
    #[schema(
        pattern = r"^(?:(?:[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.\.[^/\x00-\x1F\x7F-\x9F]+)(?:/(?:[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.[^/.\x00-\x1F\x7F-\x9F][^/\x00-\x1F\x7F-\x9F]*|\.\.[^/\x00-\x1F\x7F-\x9F]+)?)*/)?$"
    )]
    prefix: Option<String>,
}

impl OutputRequest {
    /// Where a job's results go: the requested bucket and prefix, or the configured bucket
    /// and `results/`; the bucket must be allowed and the prefix valid.
    pub(crate) fn resolve(request: Option<Self>, state: &AppState) -> Result<OutputSpec, ApiError> {
        let (bucket, prefix) = request.map(|o| (o.bucket, o.prefix)).unwrap_or_default();
        let spec = OutputSpec {
            bucket: bucket.unwrap_or_else(|| state.store.bucket().to_owned()),
            prefix: prefix.unwrap_or_else(default_output_prefix),
        };
        check_bucket(state, &spec.bucket)?;
        validate_prefix(&spec.prefix).map_err(invalid)?;
        Ok(spec)
    }
}

/// `body` with `status` and a `Location` header pointing at `location`.
pub(crate) fn with_location(
    status: StatusCode,
    body: impl axum::response::IntoResponse,
    location: &str,
) -> axum::response::Response {
    let mut resp = (status, body).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(location) {
        resp.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    resp
}

pub(crate) fn check_bucket(state: &AppState, bucket: &str) -> Result<(), ApiError> {
    validate_bucket(bucket).map_err(invalid)?;
    if !state.allowed_buckets.iter().any(|b| b == bucket) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::InvalidRequest,
            format!("bucket `{bucket}` is not allowed"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_params(params: &JobParams) -> Result<(), ApiError> {
    params.validate().map_err(invalid_params)
}

/// Parses a JSON body in two steps so clients can tell broken JSON (`invalid_request`) from a
/// well-formed request with wrong fields or values (`invalid_params`).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
    // serde's derived structs also accept a JSON array of their fields in order; a request
    // like `"params": [600, 800]` must not silently mean width 600, height 800.
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParams,
            "the body must be a JSON object",
        ));
    };
    for name in ["input", "params", "output"] {
        match fields.get(name) {
            // `null` is the same as leaving the field out (its default then applies).
            Some(Value::Null) => {
                fields.remove(name);
            }
            Some(v) if !v.is_object() => {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidParams,
                    format!("`{name}` must be a JSON object"),
                ));
            }
            _ => {}
        }
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParams, e.to_string()))
}

/// A file of a multipart request, already stored in S3 under the job id it will run as.
#[derive(Debug, Clone)]
pub(crate) struct StoredUpload {
    pub job_id: JobId,
    pub filename: Option<String>,
    pub input: ObjectRef,
}

/// A multipart request read to the end: its stored files and its other fields.
pub(crate) struct UploadForm {
    pub files: Vec<StoredUpload>,
    /// Text fields by name; a repeated name keeps its last value.
    pub fields: Map<String, Value>,
}

/// Reads a multipart body, storing every field named in `file_fields` to S3 as it arrives
/// (at most `max_files`, each at most the upload limit) and keeping the other fields as text.
/// On any error the files stored so far are deleted again.
pub(crate) async fn read_uploads(
    state: &AppState,
    tenant: &str,
    mut mp: Multipart,
    file_fields: &[&str],
    max_files: usize,
) -> Result<UploadForm, ApiError> {
    let mut form = UploadForm {
        files: Vec::new(),
        fields: Map::new(),
    };
    let res = read_uploads_into(state, tenant, &mut mp, file_fields, max_files, &mut form).await;
    if let Err(e) = res {
        remove_inputs(state, &form.files).await;
        return Err(e);
    }
    Ok(form)
}

async fn read_uploads_into(
    state: &AppState,
    tenant: &str,
    mp: &mut Multipart,
    file_fields: &[&str],
    max_files: usize,
    form: &mut UploadForm,
) -> Result<(), ApiError> {
    while let Some(field) = mp.next_field().await.map_err(field_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(invalid("a multipart field has no name"));
        }
        if file_fields.contains(&name.as_str()) {
            if form.files.len() >= max_files {
                return Err(invalid(if max_files == 1 {
                    "send one image per request".to_owned()
                } else {
                    format!("a batch holds at most {max_files} images")
                }));
            }
            // A part without a filename is a text field (browsers, curl -F name=@file and
            // HTTP libraries always name an uploaded file); FastAPI refused those as well.
            let Some(filename) = field.file_name().map(str::to_owned) else {
                return Err(invalid(format!(
                    "`{name}` must be a file (a multipart part with a filename), not a text field"
                )));
            };
            let filename = Some(filename);
            let data = read_limited(field, state.max_upload_bytes).await?;
            if data.is_empty() {
                return Err(ApiError::bad_request(
                    ErrorCode::UnsupportedFormat,
                    format!(
                        "the uploaded file {} is empty",
                        filename.as_deref().unwrap_or("")
                    ),
                ));
            }
            let job_id = JobId::new();
            let input = upload_ref(state, tenant, &job_id, filename.as_deref());
            state
                .store
                .put(&input, data, "application/octet-stream")
                .await?;
            form.files.push(StoredUpload {
                job_id,
                filename,
                input,
            });
        } else {
            let text = field.text().await.map_err(field_error)?;
            form.fields.insert(name, Value::String(text));
        }
    }
    Ok(())
}

/// Reads one field, refusing it as soon as it passes `limit` bytes.
pub(crate) async fn read_limited(mut field: Field<'_>, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(field_error)? {
        if buf.len() + chunk.len() > limit {
            return Err(too_large(buf.len() + chunk.len(), limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Best effort: deletes stored uploads of requests that failed before their jobs were queued.
pub(crate) async fn remove_inputs(state: &AppState, files: &[StoredUpload]) {
    for f in files {
        if let Err(e) = state.store.delete(&f.input).await {
            tracing::warn!(error = %e, key = %f.input.key, "could not delete an unused upload");
        }
    }
}

/// A job of `tenant` on `input`, with results at the default output place.
pub(crate) fn new_job(
    state: &AppState,
    tenant: &str,
    id: JobId,
    input: ObjectRef,
    params: JobParams,
    output: Option<OutputSpec>,
) -> Job {
    Job {
        id,
        tenant: tenant.to_owned(),
        input,
        params,
        output: output.unwrap_or_else(|| OutputSpec {
            bucket: state.store.bucket().to_owned(),
            prefix: default_output_prefix(),
        }),
        idempotency_key: None,
        created_at_ms: now_ms(),
    }
}

/// What waiting found.
pub(crate) struct Waited {
    /// One per id, `None` where the record is gone (expired or deleted).
    pub statuses: Vec<Option<JobStatus>>,
    /// Every job ended (or is gone) before the deadline.
    pub done: bool,
}

/// Polls the status records until every job has ended or `deadline` has passed. Polling backs
/// off from 50 ms to 500 ms, so a short job answers quickly and a long wait costs few reads.
pub(crate) async fn wait_for_end(
    state: &AppState,
    ids: &[JobId],
    tenant: &str,
    deadline: Instant,
) -> Result<Waited, ApiError> {
    let mut pause = Duration::from_millis(50);
    loop {
        let statuses = state.queue.statuses(ids, Some(tenant)).await?;
        let done = statuses
            .iter()
            .all(|s| s.as_ref().is_none_or(|s| s.state.is_terminal()));
        let now = Instant::now();
        if done || now >= deadline {
            return Ok(Waited { statuses, done });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// HTTP status for a job that ended without a result, by its error code: the client's input
/// → 4xx, our side → 5xx.
pub(crate) fn failure_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NoFaceDetected
        | ErrorCode::MultipleFaces
        | ErrorCode::FaceTooSmall
        | ErrorCode::FaceCutOff
        | ErrorCode::QualityRejected
        | ErrorCode::UnsupportedFormat
        | ErrorCode::ImageTooSmall
        | ErrorCode::InvalidParams
        | ErrorCode::InvalidRequest
        | ErrorCode::InputNotFound => StatusCode::BAD_REQUEST,
        ErrorCode::ImageTooLarge | ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::OutputTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::StorageUnavailable
        | ErrorCode::QueueUnavailable
        | ErrorCode::QueueFull
        | ErrorCode::ModelUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_faults_are_4xx_and_ours_5xx() {
        assert_eq!(
            failure_status(ErrorCode::NoFaceDetected),
            StatusCode::BAD_REQUEST
        );
        for code in [ErrorCode::FaceCutOff, ErrorCode::QualityRejected] {
            assert_eq!(failure_status(code), StatusCode::BAD_REQUEST, "{code}");
        }
        assert_eq!(
            failure_status(ErrorCode::UnsupportedFormat),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            failure_status(ErrorCode::ImageTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            failure_status(ErrorCode::StorageUnavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            failure_status(ErrorCode::WorkerCrashed),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            failure_status(ErrorCode::Timeout),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn filenames_are_sanitised() {
        assert_eq!(sanitize_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(sanitize_filename(Some("..")), "input");
    }
}
