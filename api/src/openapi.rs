//! The OpenAPI 3.1 document of the API, derived from the handlers' `#[utoipa::path]`
//! annotations, the schemas of [`crate::schema`] and the job contract's. Served at
//! `/openapi.json` (the crate root hands it to the router); `/docs` renders it. A route the
//! router serves but this document lacks fails the tests below.
//!
//! This module depends on the handler modules (it lists their operations); none of them
//! depends on it.

use facecraft_contract::job::{
    Detector, FaceBox, FaceInfo, FacePolicy, Format, JobParams, JobResult, JobState, JobStatus,
    ObjectRef, OutputObject, OutputSpec, Preset, Progress, QualityPolicy, QualityReport,
    QualityWarning, Rgb, SegmentationModel,
};
use facecraft_contract::{ErrorCode, JobError};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

use crate::schema::{
    BatchCreated, BatchCreatedJob, BatchRequestDoc, BatchUpload, CompatBatchItem,
    CompatBatchResult, CompatErrorBody, CompatFacePosition, CompatOutputSize, CompatProcessDetails,
    CompatReady, DeadJob, DeadList, ErrorBody, Health, JobUpload, ProcessResult, ProcessUpload,
    QuickUpload, Readiness,
};

/// HTTP status (or what happens to the job) and meaning of every error code; the `match` has
/// no wildcard, so a new `ErrorCode` does not compile until it is documented here (and in
/// docs/errors.md's table).
pub(crate) const fn error_code_doc(code: ErrorCode) -> (&'static str, &'static str) {
    match code {
        ErrorCode::InvalidRequest => (
            "400 / 403",
            "malformed JSON, bad S3 key (`..`), bucket not allowed (403), missing image field",
        ),
        ErrorCode::InvalidParams => (
            "400",
            "unknown field, wrong type or out-of-range parameter",
        ),
        ErrorCode::Unauthorized => ("401", "missing or unknown API key"),
        ErrorCode::NotFound => ("404", "no such job (or another tenant's), route or result"),
        ErrorCode::MethodNotAllowed => ("405", "a known path with a method it does not serve"),
        ErrorCode::Conflict => (
            "409",
            "cancel of an ended job; result of a job that has not succeeded; retry of a job that is not dead or failed",
        ),
        ErrorCode::PayloadTooLarge => ("413", "upload over `FACECRAFT_MAX_UPLOAD_BYTES`"),
        ErrorCode::UnsupportedMediaType => ("415", "neither JSON nor multipart"),
        ErrorCode::QueueFull => (
            "503 + `Retry-After`",
            "backlog at `FACECRAFT_MAX_BACKLOG`",
        ),
        ErrorCode::RateLimited => ("429 + `Retry-After`", "the API key's rate limit is used up"),
        ErrorCode::InputNotFound => ("404 / job failed", "the input object does not exist"),
        ErrorCode::UnsupportedFormat => (
            "400 / job failed",
            "empty upload; not an image, truncated or corrupt, or a format we cannot decode (HEIC, AVIF)",
        ),
        ErrorCode::ImageTooLarge => (
            "job failed",
            "over the byte, pixel or side limit (decompression bombs included)",
        ),
        ErrorCode::ImageTooSmall => ("job failed", "a side under 32 px"),
        ErrorCode::NoFaceDetected => ("job failed", "no face found in the photo"),
        ErrorCode::MultipleFaces => (
            "job failed",
            "several faces and `face_policy` is `error`",
        ),
        ErrorCode::FaceTooSmall => ("job failed", "the face is too small for a portrait"),
        ErrorCode::FaceCutOff => ("job failed", "the face is cut by the photo's border"),
        ErrorCode::QualityRejected => (
            "job failed",
            "`quality` is `strict` and the quality report has warnings (listed in the error's `warnings`)",
        ),
        ErrorCode::OutputTooLarge => (
            "job failed",
            "the JPEG cannot fit `jpeg_max_bytes` even at the lowest quality",
        ),
        ErrorCode::StorageUnavailable => (
            "503 + `Retry-After` / job retried",
            "S3 unreachable",
        ),
        ErrorCode::QueueUnavailable => (
            "503 + `Retry-After` / job retried",
            "Redis unreachable",
        ),
        ErrorCode::Timeout => ("job retried", "a stage ran over its time limit"),
        ErrorCode::StorageRejected => (
            "job failed",
            "S3 refused a request (permissions, missing output bucket)",
        ),
        ErrorCode::ModelUnavailable => ("job failed", "the worker lacks the requested model"),
        ErrorCode::WorkerCrashed => (
            "job `dead`",
            "processing started more than `FACECRAFT_MAX_DELIVERIES` times without finishing",
        ),
        ErrorCode::Internal => ("500 / job failed", "a bug; details only in the logs"),
        ErrorCode::TooManyStreams => (
            "503 + `Retry-After`",
            "`FACECRAFT_SSE_MAX_STREAMS` event streams are already open; poll instead",
        ),
        ErrorCode::ArchiveTooLarge => (
            "422",
            "a batch's zip would be over `FACECRAFT_MAX_BATCH_BYTES`; ask for fewer `formats`",
        ),
        ErrorCode::NoGpuWorker => (
            "job failed",
            "`restore` needs a GPU worker and none served the GPU lane within `FACECRAFT_NO_GPU_WORKER_TIMEOUT`",
        ),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Facecraft API",
        description = "Portrait jobs: upload a photo (or reference one in S3), poll the job, download \
the portrait.\n\nErrors are always JSON `{\"error\": \"<message>\", \"code\": \"<stable code>\"}` with a \
4xx/5xx status; clients match on `code` (see the `ErrorCode` schema for every code). Every `/v1` \
request needs an API key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`, unless the \
server runs with `FACECRAFT_AUTH_DISABLED=true`. A tenant sees only its own jobs; anyone \
else's job id answers 404.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::routes::jobs::create_job,
        crate::routes::jobs::get_job,
        crate::routes::jobs::cancel_job,
        crate::routes::jobs::get_result,
        crate::routes::jobs::retry_job,
        crate::routes::jobs::list_dead,
        crate::routes::uploads::create_upload,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::events::job_events,
        crate::metrics::metrics,
        crate::compat::process,
        crate::compat::quick,
        crate::compat::batch,
        crate::compat::download,
        crate::compat::delete_job,
        crate::compat::health,
        crate::compat::ready,
        crate::compat::status,
        crate::batches::create_batch,
        crate::batches::get_batch,
        crate::batches::get_zip,
        crate::page::index,
        crate::page::app_js,
        crate::page::style_css,
        crate::page::favicon,
        crate::docs::openapi_json,
        crate::docs::docs_page,
        crate::docs::docs_js,
        crate::docs::docs_css,
    ),
    components(schemas(
        ErrorBody, ErrorCode, JobError, JobStatus, JobState, JobParams, JobResult, Progress,
        OutputObject, OutputSpec, ObjectRef, FaceInfo, FaceBox, Format, Rgb, FacePolicy, Detector,
        SegmentationModel, Preset, QualityPolicy, QualityReport, QualityWarning, JobUpload,
        DeadList, DeadJob, Health, Readiness, CompatErrorBody, ProcessResult, ProcessUpload,
        QuickUpload, BatchUpload, CompatBatchResult, CompatBatchItem, CompatReady,
        CompatProcessDetails, CompatFacePosition, CompatOutputSize, BatchRequestDoc, BatchCreated,
        BatchCreatedJob,
    )),
    modifiers(&Security, &ErrorCodes),
    tags(
        (name = "jobs", description = "Create, follow, cancel and retry portrait jobs."),
        (name = "uploads", description = "Presigned uploads of large photos straight to S3."),
        (name = "health", description = "Liveness and readiness probes; no API key."),
        (name = "web", description = "The web page at `/` and its assets; no API key."),
        (name = "docs", description = "This document and its viewer; no API key."),
        (name = "batches", description = "Many inputs with shared parameters, followed together."),
        (name = "compat", description = "The Python service's API on top of the queue: enqueue, then wait up to `FACECRAFT_COMPAT_WAIT_SECS`. Failures answer 4xx/5xx; the API key, upload, rate and backlog limits of `/v1` apply."),
    ),
)]
struct ApiDoc;

/// The two ways to present an API key.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer <key>`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "`X-API-Key: <key>`",
            ))),
        );
    }
}

/// Writes the code table into the `ErrorCode` schema's description.
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, doc: &mut Document) {
        let Some(RefOr::T(Schema::Object(schema))) = doc
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("ErrorCode"))
        else {
            return;
        };
        let mut text = String::from(
            "A stable error code, in HTTP error bodies and in failed jobs' `error`. Clients match \
             on it; codes are never renamed.\n\n| code | HTTP / job | meaning |\n|---|---|---|\n",
        );
        for value in schema.enum_values.iter().flatten() {
            let name = value.as_str().unwrap_or_default();
            if let Some(code) = ErrorCode::from_code(name) {
                let (http, meaning) = error_code_doc(code);
                text.push_str(&format!("| `{name}` | {http} | {meaning} |\n"));
            }
        }
        schema.description = Some(text);
    }
}

/// The document, built once at start, with the batch limit this process enforces
/// (`FACECRAFT_MAX_BATCH_SIZE`) as the `maxItems` of both batch routes: a client or fuzzer
/// reading the document sees the limit it will meet.
pub(crate) fn spec(max_batch_size: usize) -> Document {
    let mut doc = ApiDoc::openapi();
    set_max_items(&mut doc, "BatchRequest", "inputs", max_batch_size);
    set_max_items(&mut doc, "BatchUpload", "files", max_batch_size);
    doc
}

fn set_max_items(doc: &mut Document, schema: &str, field: &str, max: usize) {
    let object = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut(schema));
    if let Some(RefOr::T(Schema::Object(object))) = object {
        if let Some(RefOr::T(Schema::Array(array))) = object.properties.get_mut(field) {
            array.max_items = Some(max);
            return;
        }
    }
    // The schema is ours: a rename must update this too.
    tracing::error!(schema, field, "no such array in the OpenAPI document");
}

#[cfg(test)]
mod tests;
