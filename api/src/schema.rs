//! The schemas the OpenAPI document names that no handler type carries: the error bodies, and
//! the shapes of multipart forms and of answers built as JSON values. A leaf: it imports only the
//! job contract, so handlers and the document can both use it.
//!
//! The `#[allow(dead_code)]` structs are never built; they exist for their `ToSchema` derive.

use facecraft_contract::job::{
    JobParams, JobState, ObjectRef, Preset, QualityPolicy, QualityReport, QualityWarning,
};
use facecraft_contract::{ErrorCode, JobError};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer: `{"error": message, "code": code}` with a 4xx/5xx status.
#[derive(Serialize, ToSchema)]
#[schema(as = Error, example = json!({"error": "job not found", "code": "not_found"}))]
pub(crate) struct ErrorBody {
    /// A human-readable message; a 500 says only `internal error`.
    error: String,
    code: ErrorCode,
    /// The request's `X-Request-Id`, which the API's log lines for it carry too.
    #[schema(example = "0193a0b2-7c1e-7f00-8000-000000000000")]
    request_id: Option<String>,
}

/// `multipart/form-data` body of `POST /v1/jobs`: the photo, plus parameters either as one
/// `params` JSON object or as single fields (`width=600`, `background=#ffffff`, ...); single
/// fields win over `params`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct JobUpload {
    /// The photo (JPEG, PNG, WebP, GIF, BMP or TIFF). The field may also be named `file`.
    #[schema(value_type = String, format = Binary, min_length = 1)]
    image: Vec<u8>,
    /// Portrait parameters as a JSON object, e.g. `{"width": 600, "height": 800}`.
    #[schema(example = json!({"width": 600, "height": 800}), nullable = false)]
    params: Option<JobParams>,
    /// Same as the `Idempotency-Key` header.
    #[schema(nullable = false, pattern = "^[!-~]{1,128}$")]
    idempotency_key: Option<String>,
    /// Any field of `JobParams` may also be sent as a form field of its own.
    #[schema(example = 600, nullable = false, minimum = 16, maximum = 4096)]
    width: Option<u32>,
    #[schema(example = 800, nullable = false, minimum = 16, maximum = 4096)]
    height: Option<u32>,
    #[schema(schema_with = rgb_text, required = false)]
    background: Option<String>,
    /// A named standard (`ad`, `passport`, `us_visa`, `badge`) whose values stand in for every
    /// parameter not given.
    #[schema(nullable = false)]
    preset: Option<Preset>,
}

/// One server-sent event of `GET /v1/jobs/{id}/events`, as its fields.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct JobEvent {
    /// Always `status`.
    #[schema(example = "status", pattern = "^status$")]
    event: String,
    /// The job's status record (`JobStatus`) as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// Response of `GET /v1/dead`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct DeadList {
    jobs: Vec<DeadJob>,
}

/// A job in the dead stream.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct DeadJob {
    #[schema(format = "uuid")]
    id: String,
    tenant: String,
    /// The last error before the job was given up, when one was recorded.
    error: Option<JobError>,
    /// When it was declared dead, RFC 3339.
    at: String,
}

/// Response of `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// Response of `GET /readyz`: overall state and each backing service.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    status: String,
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    redis: String,
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    s3: String,
    /// Whether a live worker serves each lane (`cpu`, `gpu`); null while Redis cannot say.
    lanes: LanesServed,
}

/// Whether a live worker serves each lane.
#[derive(ToSchema)]
#[allow(dead_code)] // A schema only: the handlers answer with `json!`.
pub(crate) struct LanesServed {
    cpu: Option<bool>,
    gpu: Option<bool>,
}

/// Error body of the Python-compatible routes: FastAPI's `detail`, here our stable code.
#[derive(ToSchema)]
#[schema(as = CompatError)]
#[allow(dead_code)]
pub(crate) struct CompatErrorBody {
    detail: ErrorCode,
    #[schema(example = "no face found in the photo")]
    message: String,
    /// The job's id, when one was created.
    #[schema(format = "uuid")]
    job_id: Option<String>,
    /// Facecraft's addition, only on `quality_rejected`: the quality warnings that failed the
    /// job.
    warnings: Option<Vec<QualityWarning>>,
    /// Facecraft's addition: the request's `X-Request-Id`, which the API's log lines carry too.
    request_id: Option<String>,
}

/// Answer of `POST /api/v1/process`, success or failure (then `success: false`, `error`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ProcessResult {
    success: bool,
    #[schema(format = "uuid")]
    job_id: Option<String>,
    processing_time_ms: Option<u64>,
    png_url: Option<String>,
    jpg_url: Option<String>,
    /// The main result (the PNG, else the JPEG) on this API.
    download_url: Option<String>,
    /// What the old service reported about the result; `null` on failures.
    result: Option<CompatProcessDetails>,
    /// With `return_base64=true`.
    png_base64: Option<String>,
    jpg_base64: Option<String>,
    error: Option<ErrorCode>,
    error_message: Option<String>,
    /// On failures, the code again (FastAPI's field).
    detail: Option<ErrorCode>,
    /// Facecraft's addition, on success: the portrait's quality report (absent when the worker
    /// measured none).
    quality: Option<QualityReport>,
    /// Facecraft's addition, only on `quality_rejected`: the quality warnings that failed the
    /// job.
    warnings: Option<Vec<QualityWarning>>,
    /// Facecraft's addition, on failures: the request's `X-Request-Id`.
    request_id: Option<String>,
}

/// The face and the main result of a `POST /api/v1/process`, in the old service's fields.
#[derive(ToSchema)]
#[schema(as = CompatProcessResult)]
#[allow(dead_code)]
pub(crate) struct CompatProcessDetails {
    face_detected: bool,
    /// Faces found in the photo.
    face_count: u32,
    /// The face's box in the uploaded photo's pixels.
    face_position: Option<CompatFacePosition>,
    output_size: CompatOutputSize,
    /// Bytes of the main result.
    file_size_bytes: u64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct CompatFacePosition {
    x: i64,
    y: i64,
    width: i64,
    height: i64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct CompatOutputSize {
    width: u32,
    height: u32,
}

/// Form of `POST /api/v1/process` (the Python service's field names and defaults).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct ProcessUpload {
    /// The photo (`image` is accepted too).
    #[schema(value_type = String, format = Binary, min_length = 1)]
    file: Vec<u8>,
    #[schema(example = 648, nullable = false, minimum = 16, maximum = 4096)]
    width: Option<u32>,
    #[schema(example = 648, nullable = false, minimum = 16, maximum = 4096)]
    height: Option<u32>,
    #[schema(example = 240, nullable = false, minimum = 0, maximum = 255)]
    background_r: Option<u8>,
    #[schema(example = 240, nullable = false, minimum = 0, maximum = 255)]
    background_g: Option<u8>,
    #[schema(example = 240, nullable = false, minimum = 0, maximum = 255)]
    background_b: Option<u8>,
    #[schema(example = 0.3, nullable = false, minimum = 0, maximum = 2)]
    face_margin: Option<f32>,
    #[schema(example = true, nullable = false)]
    use_oval_mask: Option<bool>,
    #[schema(example = true, nullable = false)]
    enhance_face: Option<bool>,
    #[schema(example = 0.7, nullable = false, minimum = 0, maximum = 1)]
    enhance_fidelity: Option<f32>,
    #[schema(example = false, nullable = false)]
    return_base64: Option<bool>,
    /// Facecraft's addition: a named standard whose values stand in for every field not given
    /// (`ad`, `passport`, `us_visa`, `badge`).
    #[schema(nullable = false)]
    preset: Option<Preset>,
    /// Facecraft's addition: `report` (default) or `strict` (any quality warning fails the job
    /// with `quality_rejected`).
    #[schema(nullable = false)]
    quality: Option<QualityPolicy>,
}

/// Form of `POST /api/v1/process/quick`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct QuickUpload {
    #[schema(value_type = String, format = Binary, min_length = 1)]
    file: Vec<u8>,
    /// Side of the square PNG.
    #[schema(example = 648, nullable = false, minimum = 16, maximum = 4096)]
    size: Option<u32>,
}

/// Multipart form of a batch: repeated `files` (or `file`, `image`) and shared parameters as
/// fields.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct BatchUpload {
    #[schema(schema_with = image_files)]
    files: Vec<Vec<u8>>,
    #[schema(example = 648, nullable = false, minimum = 16, maximum = 4096)]
    width: Option<u32>,
    #[schema(example = 648, nullable = false, minimum = 16, maximum = 4096)]
    height: Option<u32>,
    /// Facecraft's addition, as on `/api/v1/process`.
    #[schema(nullable = false)]
    preset: Option<Preset>,
    /// Facecraft's addition, as on `/api/v1/process`.
    #[schema(nullable = false)]
    quality: Option<QualityPolicy>,
}

/// Answer of `POST /api/v1/process/batch`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct CompatBatchResult {
    success: bool,
    /// The old service's name for the batch's id (the same value as `batch_id`).
    #[schema(format = "uuid")]
    job_id: String,
    #[schema(format = "uuid")]
    batch_id: String,
    /// From the request's arrival to this answer.
    processing_time_ms: u64,
    total: usize,
    successful: usize,
    failed: usize,
    pending: usize,
    results: Vec<CompatBatchItem>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct CompatBatchItem {
    filename: Option<String>,
    success: bool,
    #[schema(format = "uuid")]
    job_id: String,
    state: JobState,
    png_url: Option<String>,
    jpg_url: Option<String>,
    /// The main result (the PNG, else the JPEG) on this API.
    download_url: Option<String>,
    error: Option<ErrorCode>,
    error_message: Option<String>,
    /// Facecraft's addition, for a succeeded file: the portrait's quality report.
    quality: Option<QualityReport>,
    /// Facecraft's addition, only on `quality_rejected`: the warnings that failed the file.
    warnings: Option<Vec<QualityWarning>>,
}

/// Answer of `GET /ready`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct CompatReady {
    ready: bool,
    /// Whether a worker alive now has announced its models (workers may scale from zero, so
    /// `ready` does not wait for this).
    models_loaded: bool,
    #[schema(example = "ready")]
    status: String,
    #[schema(example = "ok")]
    redis: String,
    #[schema(example = "ok")]
    s3: String,
    /// Whether a live worker serves each lane (`cpu`, `gpu`; restoration jobs need `gpu`).
    lanes: LanesServed,
}

/// JSON body of `POST /v1/batches`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BatchRequest)]
#[allow(dead_code)]
pub(crate) struct BatchRequestDoc {
    /// 1 to `FACECRAFT_MAX_BATCH_SIZE` (default 50) photos in S3; the served document's
    /// `maxItems` is the configured value (`openapi::spec`).
    #[schema(min_items = 1)]
    inputs: Vec<crate::submit::InputRef>,
    params: Option<JobParams>,
    output: Option<crate::submit::OutputRequest>,
}

/// Answer of `POST /v1/batches`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct BatchCreated {
    #[schema(format = "uuid")]
    id: String,
    total: usize,
    jobs: Vec<BatchCreatedJob>,
    #[schema(example = "/v1/batches/0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b")]
    status_url: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct BatchCreatedJob {
    #[schema(format = "uuid")]
    id: String,
    filename: Option<String>,
    input: ObjectRef,
}

/// Repeated file fields of a batch: at least one, none of them empty.
fn image_files() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .min_length(Some(1)),
        )
        .min_items(Some(1))
        .build()
}

/// A colour as one form field: the text spellings of `Rgb` (an array would be sent as repeated
/// fields, which a form cannot mean).
fn rgb_text() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(facecraft_contract::job::RGB_PATTERN))
        .description(Some("`r,g,b` (0-255 each), `#rrggbb` or `rrggbb`"))
        .examples(["#ffffff"])
        .build()
}
