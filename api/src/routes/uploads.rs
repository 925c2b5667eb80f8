//! `/v1/uploads`: presigned PUTs for photos too large to send through the API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use facecraft_contract::job::{JobId, ObjectRef};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::responses::AuthErrors;
use crate::schema::ErrorBody;
use crate::submit::{invalid, parse_json, sanitize_filename};
use crate::AppState;

type Shared = Arc<AppState>;

pub(crate) fn router() -> Router<Shared> {
    Router::new().route("/v1/uploads", post(create_upload))
}

/// Body of `POST /v1/uploads`; may be empty or `null`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UploadRequest {
    /// Becomes the last part of the key (sanitised).
    #[serde(default)]
    filename: Option<String>,
    /// An `image/*` type the PUT must then send (at most 100 characters).
    #[serde(default)]
    #[schema(pattern = r"^image/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,89}$")]
    content_type: Option<String>,
}

/// `image/` and a subtype of RFC 6838's characters: the type becomes a header of the presigned
/// PUT, where anything else would break the signature (and a control character the request).
fn valid_image_type(ct: &str) -> bool {
    let Some(sub) = ct.strip_prefix("image/") else {
        return false;
    };
    (1..=90).contains(&sub.len())
        && sub.as_bytes()[0].is_ascii_alphanumeric()
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
}

/// A presigned PUT: upload with it, then create a job with `{"input": {"key": key}}`.
#[derive(Serialize, utoipa::ToSchema)]
struct UploadResponse {
    /// Always `PUT`.
    #[schema(value_type = String, example = "PUT")]
    method: &'static str,
    url: String,
    bucket: String,
    key: String,
    expires_in_secs: u64,
    /// Headers the PUT must carry for the signature to match.
    #[schema(value_type = Object, example = json!({"content-type": "image/jpeg"}))]
    headers: Map<String, Value>,
}

/// Presign an upload
///
/// A presigned PUT URL for a large photo to go straight to S3; then create a job that
/// references its `key`.
#[utoipa::path(
    post,
    path = "/v1/uploads",
    tag = "uploads",
    operation_id = "create_upload",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = Option<UploadRequest>, content_type = "application/json",
        example = json!({"filename": "me.jpg", "content_type": "image/jpeg"})),
    responses(
        (status = 200, description = "The presigned PUT.", body = UploadResponse,
            example = json!({"method": "PUT", "url": "http://127.0.0.1:8333/facecraft/uploads/acme/0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b/me.jpg?X-Amz-Signature=…", "bucket": "facecraft", "key": "uploads/acme/0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b/me.jpg", "expires_in_secs": 900, "headers": {"content-type": "image/jpeg"}})),
        (status = 400, description = "Malformed JSON (`invalid_request`), unknown field (`invalid_params`), or a content type that is not `image/*`.", body = ErrorBody,
            example = json!({"error": "content_type must be an image/* type", "code": "invalid_request"})),
        AuthErrors,
    ),
)]
async fn create_upload(
    State(state): State<Shared>,
    Caller { tenant, .. }: Caller,
    body: Bytes,
) -> Result<Json<UploadResponse>, ApiError> {
    // No body, and JSON `null`, both mean "no preferences".
    let req: UploadRequest = if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
        UploadRequest::default()
    } else {
        parse_json(&body)?
    };
    if let Some(ct) = &req.content_type {
        if !valid_image_type(ct) {
            return Err(invalid(
                "content_type must be an image/* media type of at most 96 characters, e.g. image/jpeg",
            ));
        }
    }
    let key = format!(
        "uploads/{tenant}/{}/{}",
        JobId::new(),
        sanitize_filename(req.filename.as_deref())
    );
    let obj = ObjectRef {
        bucket: state.store.bucket().to_owned(),
        key,
    };
    let url = state
        .store
        .presign_put(&obj, req.content_type.as_deref())
        .await?;
    let mut hdrs = Map::new();
    if let Some(ct) = req.content_type {
        hdrs.insert("content-type".into(), Value::String(ct));
    }
    Ok(Json(UploadResponse {
        method: "PUT",
        url,
        bucket: obj.bucket,
        key: obj.key,
        expires_in_secs: state.store.presign_expiry().as_secs(),
        headers: hdrs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_sanitised() {
        assert_eq!(sanitize_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(
            sanitize_filename(Some("C:\\x\\me photo.JPG")),
            "mephoto.JPG"
        );
        assert_eq!(sanitize_filename(Some("..")), "input");
        assert_eq!(sanitize_filename(None), "input");
    }
}
