//! The HTTP router: every resource's routes, the fallbacks and the layers around them all.
//! `/v1` jobs and dead jobs are in [`jobs`], presigned uploads in [`uploads`], the probes and
//! metrics in [`health`]; the web page, the Python-compatible API, batches and the docs have
//! modules of their own.

pub(crate) mod health;
pub(crate) mod jobs;
pub(crate) mod uploads;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use facecraft_contract::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::error::ApiError;
use crate::AppState;

type Shared = Arc<AppState>;

/// The whole API; `spec` is the OpenAPI document `/openapi.json` serves.
pub(crate) fn router(
    state: Shared,
    settings: &Settings,
    spec: &utoipa::openapi::OpenApi,
) -> Router {
    // Multipart framing adds a little on top of the file itself.
    let body_limit = settings.max_upload_bytes + 64 * 1024;
    Router::new()
        .merge(jobs::router())
        .merge(uploads::router())
        .merge(health::router())
        .merge(crate::page::router(settings))
        .merge(crate::compat::router(settings.max_batch_bytes))
        .merge(crate::batches::router(settings.max_batch_bytes))
        .merge(crate::docs::router(spec))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this method is not allowed on this path",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(settings.request_timeout_secs),
        ))
        .layer(axum::middleware::from_fn_with_state(
            linger_budget(settings),
            crate::linger::linger,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "handler panicked",
            )
            .into_response()
        }))
        .layer(axum::middleware::from_fn(crate::http::json_errors))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            crate::http::count_requests,
        ))
        .layer(crate::http::compression())
        .layer(tower::util::option_layer(crate::http::cors(
            &settings.cors_origins,
        )))
        // Outermost: every layer above, and every log line, sees the request's ID.
        .layer(axum::middleware::from_fn(crate::http::request_ids))
        .with_state(state)
}

/// Reads up to twice the largest body any route takes: a client somewhat over a limit still
/// reads its 413.
fn linger_budget(settings: &Settings) -> crate::linger::Budget {
    let largest = settings
        .max_batch_bytes
        .max(settings.max_upload_bytes + 64 * 1024) as u64;
    crate::linger::Budget {
        largest_body: largest,
        max_bytes: largest.saturating_mul(2),
        max_time: Duration::from_secs(settings.request_timeout_secs),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::{header, Request};
    use clap::Parser;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::config::ApiKey;

    const KEY: &str = "acme-key-0123456789";

    /// The router with one API key and a burst of one request; Redis and S3 on a closed port
    /// (the requests below never reach them).
    async fn app() -> Router {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let settings = Settings::try_parse_from([
            "facecraft-api",
            "--auth-disabled",
            "true",
            "--redis-url",
            &format!("redis://{closed}"),
            "--s3-endpoint",
            &format!("http://{closed}"),
        ])
        .unwrap();
        let keys = [ApiKey {
            tenant: "acme".into(),
            key: KEY.into(),
        }];
        let queue = facecraft_shared::queue::Queue::new(&settings.redis, &settings.queue).unwrap();
        let state = Arc::new(AppState {
            queue: queue.clone(),
            store: facecraft_shared::store::ObjectStore::new(&settings.s3)
                .await
                .unwrap(),
            auth: crate::auth::Auth::new(&keys, &[], crate::ratelimit::Limiter::new(queue, 1, 1)),
            allowed_buckets: vec![settings.s3.bucket.clone()],
            max_upload_bytes: settings.max_upload_bytes,
            streams: crate::events::Streams::new(&settings, tokio::sync::watch::channel(false).1),
            compat_wait: Duration::from_secs(settings.compat_wait_secs),
            max_batch_size: settings.max_batch_size,
            max_batch_bytes: settings.max_batch_bytes,
            started: std::time::Instant::now(),
            http_metrics: Arc::default(),
        });
        router(state, &settings, &utoipa::openapi::OpenApi::default())
    }

    async fn call(
        router: &Router,
        method: &str,
        uri: &str,
        key: bool,
    ) -> (u16, Option<String>, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if key {
            req = req.header("x-api-key", KEY);
        }
        let resp = router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, retry_after, serde_json::from_slice(&body).unwrap())
    }

    /// Each route family refuses a missing key (401) and a used-up rate limit (429 with
    /// `Retry-After`) in its own error shape.
    #[tokio::test]
    async fn callers_are_refused_in_the_shape_of_their_routes() {
        let r = app().await;
        let (code, _, body) = call(&r, "POST", "/v1/uploads", false).await;
        assert_eq!((code, body["code"].as_str()), (401, Some("unauthorized")));
        let (code, _, body) = call(&r, "GET", "/status", false).await;
        assert_eq!((code, body["detail"].as_str()), (401, Some("unauthorized")));
        let (code, _, body) = call(&r, "POST", "/api/v1/process", false).await;
        assert_eq!(
            (code, body["success"].as_bool(), body["error"].as_str()),
            (401, Some(false), Some("unauthorized"))
        );
        // The one request of the burst: authenticated, then refused for its missing body.
        let (code, _, _) = call(&r, "POST", "/api/v1/process", true).await;
        assert_eq!(code, 415);
        let (code, retry, body) = call(&r, "POST", "/v1/uploads", true).await;
        assert_eq!((code, body["code"].as_str()), (429, Some("rate_limited")));
        assert!(retry.is_some());
        let (code, retry, body) = call(&r, "GET", "/status", true).await;
        assert_eq!((code, body["detail"].as_str()), (429, Some("rate_limited")));
        assert!(retry.is_some());
        let (code, retry, body) = call(&r, "POST", "/api/v1/process", true).await;
        assert_eq!(
            (code, body["success"].as_bool(), body["detail"].as_str()),
            (429, Some(false), Some("rate_limited"))
        );
        assert!(retry.is_some());
    }
}
