//! Batches: many inputs with shared parameters, queued together as one job each. The batch
//! record (`{p}:batch:{id}`) lists its jobs and its tenant; it expires like a job status and
//! is kept alive while any of its jobs still runs. Results can be fetched as one zip.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use facecraft_contract::job::{
    now_ms, rfc3339_ms, validate_key, Format, JobId, JobParams, JobState, ObjectRef, OutputSpec,
};
use facecraft_contract::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::responses::{AuthErrors, BatchUnavailable};
use crate::schema::{BatchCreated, BatchRequestDoc, BatchUpload, ErrorBody};
use crate::submit::{
    self, invalid, invalid_params, InputRef, OutputRequest, StoredUpload, RESULT_MAX_BYTES,
};
use crate::AppState;

type Shared = Arc<AppState>;

pub(crate) fn router(max_batch_bytes: usize) -> Router<Shared> {
    Router::new()
        .route(
            "/v1/batches",
            post(create_batch).layer(DefaultBodyLimit::max(max_batch_bytes)),
        )
        .route("/v1/batches/{id}", get(get_batch))
        .route("/v1/batches/{id}/zip", get(get_zip))
}

/// The stored record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub id: JobId,
    pub tenant: String,
    pub created_at_ms: u64,
    pub jobs: Vec<BatchJob>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BatchJob {
    pub id: JobId,
    /// The uploaded file's name, for uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub input: ObjectRef,
}

/// Queues one job per input, all or none, and stores the batch record. Stored uploads are
/// deleted again when the queue refuses the batch.
pub(crate) async fn create(
    state: &AppState,
    tenant: &str,
    inputs: Vec<StoredUpload>,
    params: JobParams,
    output: Option<OutputSpec>,
) -> Result<Batch, ApiError> {
    let batch = Batch {
        id: JobId::new(),
        tenant: tenant.to_owned(),
        created_at_ms: now_ms(),
        jobs: inputs
            .iter()
            .map(|u| BatchJob {
                id: u.job_id,
                filename: u.filename.clone(),
                input: u.input.clone(),
            })
            .collect(),
    };
    let jobs: Vec<_> = inputs
        .iter()
        .map(|u| {
            submit::new_job(
                state,
                tenant,
                u.job_id,
                u.input.clone(),
                params.clone(),
                output.clone(),
            )
        })
        .collect();
    let json = serde_json::to_string(&batch).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    })?;
    if let Err(e) = state.queue.enqueue_batch(&batch.id, &json, &jobs).await {
        // Only what this request stored (under its new job ids), never a referenced input.
        let uploaded: Vec<_> = inputs
            .into_iter()
            .filter(|u| {
                u.input
                    .key
                    .starts_with(&format!("uploads/{tenant}/{}/", u.job_id))
            })
            .collect();
        submit::remove_inputs(state, &uploaded).await;
        return Err(e.into());
    }
    tracing::info!(batch_id = %batch.id, tenant, jobs = jobs.len(), "batch enqueued");
    Ok(batch)
}

/// JSON body of `POST /v1/batches`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    inputs: Vec<InputRef>,
    #[serde(default)]
    params: JobParams,
    #[serde(default)]
    output: Option<OutputRequest>,
}

/// Parameters of a multipart batch: a `params` JSON object and/or single fields, as on
/// `POST /v1/jobs`.
fn form_params(fields: &Map<String, Value>) -> Result<JobParams, ApiError> {
    let mut obj = Map::new();
    if let Some(text) = fields.get("params").and_then(Value::as_str) {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => obj = m,
            Ok(_) => return Err(invalid_params("`params` must be a JSON object")),
            Err(e) => return Err(invalid_params(format!("`params`: {e}"))),
        }
    }
    for (k, v) in fields.iter().filter(|(k, _)| k.as_str() != "params") {
        let text = v.as_str().unwrap_or_default();
        // "648" → number, "true" → bool, "240,240,240" stays a string.
        let value = serde_json::from_str::<Value>(text)
            .ok()
            .filter(|v| !v.is_object())
            .unwrap_or_else(|| Value::String(text.to_owned()));
        obj.insert(k.clone(), value);
    }
    let params: JobParams =
        serde_json::from_value(Value::Object(obj)).map_err(|e| invalid_params(e.to_string()))?;
    submit::validate_params(&params)?;
    Ok(params)
}

#[derive(Serialize)]
struct Created {
    id: JobId,
    total: usize,
    jobs: Vec<BatchJob>,
    status_url: String,
}

/// Create a batch
///
/// Many inputs with shared parameters: multipart (repeated `files`/`file`/`image` fields plus
/// parameter fields) or JSON S3 references. All jobs are queued, or none.
#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "batches",
    operation_id = "create_batch",
    security(("bearer" = []), ("api_key" = [])),
    request_body(
        description = "JSON S3 references, or a multipart upload of several files.",
        content(
            (BatchRequestDoc = "application/json", example = json!({"inputs": [{"key": "inbox/a.jpg"}, {"key": "inbox/b.jpg"}], "params": {"width": 600, "height": 600}})),
            (BatchUpload = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Queued; the batch id and one job per input.", body = BatchCreated,
            headers(("Location" = String, description = "`/v1/batches/{id}`"))),
        (status = 400, description = "No inputs, more than `FACECRAFT_MAX_BATCH_SIZE`, or a bad parameter.", body = ErrorBody,
            example = json!({"error": "a batch holds 1-50 inputs", "code": "invalid_params"})),
        (status = 415, description = "Neither JSON nor multipart.", body = ErrorBody,
            example = json!({"error": "send multipart/form-data with `image` fields, or application/json with `inputs`", "code": "unsupported_media_type"})),
        (status = 404, description = "An input object does not exist.", body = ErrorBody,
            example = json!({"error": "input object facecraft/inbox/a.jpg does not exist", "code": "input_not_found"})),
        (status = 413, description = "Body over `FACECRAFT_MAX_BATCH_BYTES`.", body = ErrorBody,
            example = json!({"error": "request body is over the size limit", "code": "payload_too_large"})),
        (status = 403, description = "A bucket that `FACECRAFT_ALLOWED_BUCKETS` does not list.", body = ErrorBody,
            example = json!({"error": "bucket `other` is not allowed", "code": "invalid_request"})),
        AuthErrors, BatchUnavailable,
    ),
)]
async fn create_batch(
    State(state): State<Shared>,
    headers: HeaderMap,
    Caller { tenant, .. }: Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let max = state.max_batch_size;
    let batch = if content_type.starts_with("application/json") {
        let body = Bytes::from_request(req, &())
            .await
            .map_err(|e| submit::body_error(e.status(), e.body_text()))?;
        let r: BatchRequest = submit::parse_json(&body)?;
        submit::validate_params(&r.params)?;
        if r.inputs.is_empty() || r.inputs.len() > max {
            return Err(invalid(format!("a batch holds 1-{max} inputs")));
        }
        let output = OutputRequest::resolve(r.output, &state)?;
        let mut inputs = Vec::with_capacity(r.inputs.len());
        for i in r.inputs {
            let input = i.resolve(&state);
            submit::check_bucket(&state, &input.bucket)?;
            validate_key(&input.key).map_err(invalid)?;
            inputs.push(StoredUpload {
                job_id: JobId::new(),
                filename: None,
                input,
            });
        }
        create(&state, &tenant, inputs, r.params, Some(output)).await?
    } else if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(req, &())
            .await
            .map_err(|e| submit::body_error(e.status(), e.body_text()))?;
        let form =
            submit::read_uploads(&state, &tenant, multipart, &["image", "file", "files"], max)
                .await?;
        let params = match form_params(&form.fields) {
            Ok(p) if !form.files.is_empty() => p,
            Ok(_) => {
                return Err(invalid(
                    "send the images in fields named `image` (or `files`)",
                ))
            }
            Err(e) => {
                submit::remove_inputs(&state, &form.files).await;
                return Err(e);
            }
        };
        create(&state, &tenant, form.files, params, None).await?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send multipart/form-data with `image` fields, or application/json with `inputs`",
        ));
    };
    let location = format!("/v1/batches/{}", batch.id);
    let body = Created {
        id: batch.id,
        total: batch.jobs.len(),
        jobs: batch.jobs,
        status_url: location.clone(),
    };
    Ok(submit::with_location(
        StatusCode::ACCEPTED,
        Json(body),
        &location,
    ))
}

/// The batch record, if the caller may see it (its tenant, or an admin).
async fn load(
    state: &AppState,
    caller: Caller,
    id: &str,
    touch: bool,
) -> Result<(Batch, Option<String>), ApiError> {
    let id = JobId::parse(id).ok_or_else(|| ApiError::not_found("batch"))?;
    let json = state
        .queue
        .batch(&id, touch)
        .await?
        .ok_or_else(|| ApiError::not_found("batch"))?;
    let batch: Batch = serde_json::from_str(&json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("batch {id} is unreadable: {e}"),
        )
    })?;
    if !caller.admin && batch.tenant != caller.tenant {
        return Err(ApiError::not_found("batch"));
    }
    let tenant = (!caller.admin).then_some(caller.tenant);
    Ok((batch, tenant))
}

#[derive(Serialize)]
struct JobEntry {
    id: JobId,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    /// A job state, or `expired` once its record is gone.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<facecraft_contract::job::Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<facecraft_contract::JobError>,
    /// Result paths by format, once succeeded.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    results: BTreeMap<&'static str, String>,
}

/// Batch status
///
/// Counts by state and every job's state, progress, error and result paths.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    tag = "batches",
    operation_id = "get_batch",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "Batch id", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b")),
    responses(
        (status = 200, description = "The batch.", body = Object, example = json!({"id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b", "total": 2, "counts": {"succeeded": 1, "running": 1}, "jobs": [{"id": "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5c", "state": "succeeded"}]})),
        (status = 404, description = "No such batch, or another tenant's.", body = ErrorBody,
            example = json!({"error": "batch not found", "code": "not_found"})),
        AuthErrors, BatchUnavailable,
    ),
)]
async fn get_batch(
    State(state): State<Shared>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let (batch, tenant) = load(&state, caller, &id, false).await?;
    let ids: Vec<JobId> = batch.jobs.iter().map(|j| j.id).collect();
    let statuses = state.queue.statuses(&ids, tenant.as_deref()).await?;
    let mut counts: BTreeMap<&'static str, usize> = [
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "dead",
        "expired",
    ]
    .into_iter()
    .map(|s| (s, 0))
    .collect();
    let mut jobs = Vec::with_capacity(ids.len());
    for (j, s) in batch.jobs.iter().zip(statuses) {
        let entry = match s {
            None => JobEntry {
                id: j.id,
                filename: j.filename.clone(),
                state: "expired",
                progress: None,
                error: None,
                results: BTreeMap::new(),
            },
            Some(s) => JobEntry {
                id: j.id,
                filename: j.filename.clone(),
                state: s.state.as_str(),
                progress: s.progress.filter(|_| !s.state.is_terminal()),
                error: s.error,
                results: s
                    .result
                    .iter()
                    .flat_map(|r| &r.outputs)
                    .map(|o| {
                        (
                            o.format.extension(),
                            format!("/v1/jobs/{}/result/{}", j.id, o.format.extension()),
                        )
                    })
                    .collect(),
            },
        };
        *counts.entry(entry.state).or_default() += 1;
        jobs.push(entry);
    }
    let unfinished = counts["queued"] + counts["running"];
    if unfinished > 0 {
        // Keep the record as long as its jobs may still need it.
        state.queue.batch(&batch.id, true).await?;
    }
    Ok(Json(json!({
        "id": batch.id,
        "created_at": rfc3339_ms(batch.created_at_ms),
        "total": jobs.len(),
        "done": unfinished == 0,
        "counts": counts,
        "jobs": jobs,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZipQuery {
    /// Formats, comma-separated (default: every stored format).
    #[serde(default)]
    formats: Option<String>,
}

/// A zip (stored, not deflated: PNG, JPEG and WebP are compressed already) of the succeeded
/// jobs' results, built in memory up to FACECRAFT_MAX_BATCH_BYTES.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}/zip",
    tag = "batches",
    operation_id = "get_batch_zip",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = String, Path, description = "Batch id", example = "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b"),
        ("formats" = Option<String>, Query, description = "`png`, `jpg` (or `jpeg`), `webp`, or several comma-separated, e.g. `png,jpg` (default, or empty: every stored format)", example = "png", pattern = "^((png|jpg|jpeg|webp)(,(png|jpg|jpeg|webp))*)?$"),
    ),
    responses(
        (status = 200, description = "A zip of the succeeded jobs' results.", content_type = "application/zip", body = Vec<u8>),
        (status = 400, description = "A bad `formats` value.", body = ErrorBody,
            example = json!({"error": "unknown format `gif`", "code": "invalid_params"})),
        (status = 422, description = "The zip would be over `FACECRAFT_MAX_BATCH_BYTES`.", body = ErrorBody,
            example = json!({"error": "the archive would be over the limit", "code": "archive_too_large"})),
        (status = 404, description = "No such batch, or another tenant's.", body = ErrorBody,
            example = json!({"error": "batch not found", "code": "not_found"})),
        (status = 409, description = "No job of the batch has succeeded (yet): nothing to zip.", body = ErrorBody,
            example = json!({"error": "no job of this batch has succeeded (yet)", "code": "conflict"})),
        AuthErrors, BatchUnavailable,
    ),
)]
async fn get_zip(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ZipQuery>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let wanted: Vec<Format> = match q.formats.as_deref() {
        None | Some("") => Format::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|f| {
                Format::from_extension(f)
                    .ok_or_else(|| invalid_params(format!("unknown format `{f}`")))
            })
            .collect::<Result<_, _>>()?,
    };
    let (batch, tenant) = load(&state, caller, &id, false).await?;
    let ids: Vec<JobId> = batch.jobs.iter().map(|j| j.id).collect();
    let statuses = state.queue.statuses(&ids, tenant.as_deref()).await?;
    let mut entries = Vec::new();
    let mut total: u64 = 0;
    for (n, (j, s)) in batch.jobs.iter().zip(statuses).enumerate() {
        let Some(s) = s.filter(|s| s.state == JobState::Succeeded) else {
            continue;
        };
        let stem = j
            .filename
            .as_deref()
            .or_else(|| j.input.key.rsplit('/').next())
            .map(|f| submit::sanitize_filename(Some(f)))
            .map(|f| f.rsplit_once('.').map_or(f.clone(), |(s, _)| s.to_owned()))
            .unwrap_or_default();
        for o in s.result.iter().flat_map(|r| &r.outputs) {
            if !wanted.contains(&o.format) {
                continue;
            }
            total += o.bytes;
            let name = format!("{:03}-{stem}.{}", n + 1, o.format.extension());
            entries.push((
                name,
                ObjectRef {
                    bucket: o.bucket.clone(),
                    key: o.key.clone(),
                },
            ));
        }
    }
    if entries.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "no job of this batch has succeeded (yet)",
        ));
    }
    let limit = state.max_batch_bytes as u64;
    if total > limit {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ArchiveTooLarge,
            format!("the results hold {total} bytes, over the {limit}-byte zip limit; ask for fewer `formats`"),
        ));
    }
    let mut files = Vec::with_capacity(entries.len());
    for (name, obj) in entries {
        let data = state.store.get(&obj, RESULT_MAX_BYTES.min(limit)).await?;
        files.push((name, data));
    }
    let zip = tokio::task::spawn_blocking(move || build_zip(&files))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                format!("building the zip: {e}"),
            )
        })?;
    let disposition = format!("attachment; filename=\"batch-{}.zip\"", batch.id);
    let mut resp = ([(header::CONTENT_TYPE, "application/zip")], zip).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn build_zip(files: &[(String, Bytes)]) -> zip::result::ZipResult<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    for (name, data) in files {
        w.start_file(name.as_str(), opts)?;
        w.write_all(data)?;
    }
    Ok(w.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_hold_the_files_unchanged() {
        let files = vec![
            ("001-a.png".to_owned(), Bytes::from_static(b"\x89PNG one")),
            ("002-b.jpg".to_owned(), Bytes::from_static(b"\xff\xd8 two")),
        ];
        let zip = build_zip(&files).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert_eq!(archive.len(), 2);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name("002-b.jpg").unwrap(), &mut out).unwrap();
        assert_eq!(out, b"\xff\xd8 two");
    }

    #[test]
    fn form_fields_become_params() {
        let mut f = Map::new();
        f.insert("width".into(), Value::String("300".into()));
        f.insert(
            "params".into(),
            Value::String(r#"{"formats": ["png"]}"#.into()),
        );
        let p = form_params(&f).unwrap();
        assert_eq!((p.width, p.formats.clone()), (300, vec![Format::Png]));
        f.insert("widht".into(), Value::String("1".into()));
        assert_eq!(form_params(&f).unwrap_err().code, ErrorCode::InvalidParams);
    }
}
