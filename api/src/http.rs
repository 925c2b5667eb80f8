//! What every request goes through besides its route: a request ID (`x-request-id`, accepted
//! or made, echoed, in every log line of the request and in every error body), JSON for every
//! error (extractor rejections included), HTTP metrics per route, CORS for the configured
//! origins, and compression of large JSON and text answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use facecraft_contract::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::error::ApiError;

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request ID taken from a client; a longer or odd one is replaced by our own.
const MAX_REQUEST_ID: usize = 128;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The ID of the request being served, for error bodies; `None` outside a request.
pub(crate) fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A client's ID is kept when it is 1 to 128 printable ASCII characters without spaces, so it
/// can neither break a log line nor fill one.
fn acceptable(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Middleware: takes the client's `x-request-id` or makes one (a UUIDv7), runs the request in a
/// span that carries it, and echoes it on the response.
pub(crate) async fn request_ids(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let value = HeaderValue::from_str(&id).expect("checked or made printable ASCII");
    req.headers_mut().insert(X_REQUEST_ID, value.clone());
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = REQUEST_ID.scope(id, next.run(req).instrument(span)).await;
    resp.headers_mut().insert(X_REQUEST_ID, value);
    resp
}

/// Middleware: error answers that are not JSON (axum's extractor rejections are plain text, a
/// timeout has no body at all) become the route family's JSON error, so that every error a
/// client sees has a stable `code`. Other headers (`Retry-After`, `Allow`) are kept.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let plain = match content_type.as_deref() {
        None => true,
        Some(ct) => ct.starts_with("text/plain"),
    };
    if !plain {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Rejection texts are a line or two; anything longer is cut, not buffered whole.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ErrorCode::Timeout,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let error = ApiError::new(status, code, message);
    let mut json = error.into_response_for(&path);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in parts.headers {
        if let Some(name) = name {
            json.headers_mut().entry(name).or_insert(value);
        }
    }
    json
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Route {
    route: String,
}

/// Requests by route and status, and their time to the response head by route. The route is
/// the pattern (`/v1/jobs/{id}`), never the path, so IDs do not multiply the series.
pub(crate) struct HttpMetrics {
    pub requests: Family<RouteStatus, Counter>,
    pub duration: Family<Route, Histogram>,
}

/// Seconds; from a cached status read to a compat request that waits for its job.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(DURATION_BUCKETS.iter().copied())
            }),
        }
    }
}

/// Middleware: counts every request and times it to its response head (an event stream's
/// lifetime is not its latency).
pub(crate) async fn count_requests(
    State(metrics): State<Arc<HttpMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics
        .duration
        .get_or_create(&Route {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RouteStatus {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// CORS for `origins` (`*` for any); `None` when the list is empty, so no CORS header is sent
/// and browsers keep to same-origin calls. A preflight from another origin gets no
/// `access-control-allow-origin`, which browsers take as a refusal.
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let allow = if origins == ["*"] {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("idempotency-key"),
                X_REQUEST_ID,
            ])
            .expose_headers([X_REQUEST_ID, header::RETRY_AFTER, header::LOCATION])
            .max_age(Duration::from_secs(600)),
    )
}

/// Compresses JSON and text answers of 1 KiB or more (gzip, when the client accepts it).
/// Images, zips and event streams are left alone: they are compressed already, or must flow.
#[derive(Clone, Copy)]
pub(crate) struct Textual;

impl Predicate for Textual {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: http_body::Body,
    {
        let Some(ct) = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let ct = ct.to_ascii_lowercase();
        (ct.starts_with("application/json")
            || ct.starts_with("application/openmetrics-text")
            || ct.starts_with("text/"))
            && !ct.starts_with("text/event-stream")
    }
}

pub(crate) fn compression(
) -> CompressionLayer<tower_http::compression::predicate::And<SizeAbove, Textual>> {
    CompressionLayer::new()
        .gzip(true)
        .compress_when(SizeAbove::new(1024).and(Textual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_printable_and_short() {
        assert!(acceptable("req-42"));
        assert!(acceptable("0193a0b2-7c1e-7f00-8000-000000000000"));
        assert!(acceptable(&"a".repeat(128)));
        assert!(!acceptable(""));
        assert!(!acceptable(&"a".repeat(129)));
        assert!(!acceptable("two words"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable("ünïcode"));
    }

    #[test]
    fn no_origins_means_no_cors() {
        assert!(cors(&[]).is_none());
        assert!(cors(&[String::new()]).is_none());
        assert!(cors(&["https://hr.example.com".into()]).is_some());
    }
}
