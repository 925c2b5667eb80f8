//! `/openapi.json` and the API reference at `/docs`: a small HTML/CSS/JS viewer compiled into
//! the binary (no CDN, no build-time download) that fetches the document and renders it, under
//! a Content-Security-Policy that allows nothing but our own origin. Neither needs an API key.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const DOCS_HTML: &str = include_str!("../static/docs.html");
const DOCS_JS: &str = include_str!("../static/docs.js");
const DOCS_CSS: &str = include_str!("../static/docs.css");

/// Own origin only: no inline script or style, no frames, no foreign connections.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

struct Docs {
    spec_json: String,
}

/// The docs routes, serving `spec`; merged into the API router, they need none of its state.
pub(crate) fn router<S>(spec: &utoipa::openapi::OpenApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let spec_json = spec
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route("/docs/docs.js", get(docs_js))
        .route("/docs/docs.css", get(docs_css))
        .with_state(Arc::new(Docs { spec_json }))
}

/// The OpenAPI document
///
/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    operation_id = "openapi_json",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object),
    ),
)]
async fn openapi_json(State(docs): State<Arc<Docs>>) -> Response {
    asset(docs.spec_json.clone(), "application/json")
}

/// API reference
///
/// A page that renders this document: operations by tag, parameters, bodies, schemas,
/// examples and the error codes.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    operation_id = "docs_page",
    responses((status = 200, description = "HTML page.", content_type = "text/html", body = String)),
)]
async fn docs_page() -> Response {
    asset(DOCS_HTML.to_owned(), "text/html; charset=utf-8")
}

/// API reference script
#[utoipa::path(
    get,
    path = "/docs/docs.js",
    tag = "docs",
    operation_id = "docs_js",
    responses((status = 200, description = "JavaScript of the API reference page.", content_type = "text/javascript", body = String)),
)]
async fn docs_js() -> Response {
    asset(DOCS_JS.to_owned(), "text/javascript; charset=utf-8")
}

/// API reference stylesheet
#[utoipa::path(
    get,
    path = "/docs/docs.css",
    tag = "docs",
    operation_id = "docs_css",
    responses((status = 200, description = "Stylesheet of the API reference page.", content_type = "text/css", body = String)),
)]
async fn docs_css() -> Response {
    asset(DOCS_CSS.to_owned(), "text/css; charset=utf-8")
}

fn asset(body: String, content_type: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = resp.headers_mut();
    // Small, and a new binary may ship a new document: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    crate::page::browser_hardening(h, HeaderValue::from_static(POLICY));
    resp
}
