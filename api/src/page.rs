//! The web page at `/`: pick a photo, choose size and options, follow the job, see and download
//! the portrait. Plain HTML/CSS/JS compiled into the binary (no CDN, no build step), served with
//! a strict Content-Security-Policy whose only foreign origin is the S3 server of result URLs.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use facecraft_shared::config::S3Settings;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::Settings;

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const STYLE_CSS: &str = include_str!("../static/style.css");
const FAVICON_SVG: &str = include_str!("../static/favicon.svg");

/// Stands in `index.html` where asset URLs need the version that busts browser caches.
const VERSION_MARK: &str = "__ASSET_VERSION__";

/// Browsers revalidate the page itself every time (a new binary may ship a new page).
const REVALIDATE: &str = "no-cache";
/// Asset URLs carry a hash of every asset, so a versioned URL never changes content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    body: Vec<u8>,
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: impl Into<Vec<u8>>, content_type: &'static str) -> Self {
        let body = body.into();
        let etag = format!("\"{}\"", short_hash(&[&body]));
        Self {
            body,
            content_type,
            etag,
        }
    }
}

/// Everything the page routes serve, built once at start.
struct Page {
    index: Asset,
    app_js: Asset,
    style_css: Asset,
    favicon: Asset,
    version: String,
    csp: HeaderValue,
}

/// The page's routes; merged into the API router, they need none of its state.
pub(crate) fn router<S>(settings: &Settings) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let version = short_hash(&[
        APP_JS.as_bytes(),
        STYLE_CSS.as_bytes(),
        FAVICON_SVG.as_bytes(),
    ]);
    let csp = content_security_policy(&settings.s3);
    let page = Arc::new(Page {
        index: Asset::new(
            INDEX_HTML.replace(VERSION_MARK, &version),
            "text/html; charset=utf-8",
        ),
        app_js: Asset::new(APP_JS, "text/javascript; charset=utf-8"),
        style_css: Asset::new(STYLE_CSS, "text/css; charset=utf-8"),
        favicon: Asset::new(FAVICON_SVG, "image/svg+xml"),
        version,
        csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| {
            // Only an endpoint with bytes a header cannot hold gets here; then results
            // simply do not show, rather than the page loosening its policy.
            tracing::warn!(policy = %csp, "page CSP is not a valid header; images from S3 will be blocked");
            HeaderValue::from_static(BASE_POLICY)
        }),
    });
    Router::new()
        .route("/", get(index))
        .route("/static/app.js", get(app_js))
        .route("/static/style.css", get(style_css))
        .route("/favicon.svg", get(favicon))
        .with_state(page)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VersionQuery {
    /// Asset version (a hash of all assets); the current one makes the response immutable.
    v: Option<String>,
}

/// Web page
#[utoipa::path(
    get,
    path = "/",
    tag = "web",
    operation_id = "index",
    responses(
        (status = 200, description = "The upload page.", content_type = "text/html", body = String,
            headers(("ETag" = String), ("Cache-Control" = String), ("Content-Security-Policy" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched the `ETag`)."),
    ),
)]
async fn index(State(page): State<Arc<Page>>, headers: HeaderMap) -> Response {
    serve(&page, &page.index, REVALIDATE, &headers)
}

/// Web page script
#[utoipa::path(
    get,
    path = "/static/app.js",
    tag = "web",
    operation_id = "app_js",
    params(VersionQuery),
    responses(
        (status = 200, description = "The page's JavaScript.", content_type = "text/javascript", body = String,
            headers(("ETag" = String), ("Cache-Control" = String), ("Content-Security-Policy" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched the `ETag`)."),
    ),
)]
async fn app_js(
    State(page): State<Arc<Page>>,
    Query(q): Query<VersionQuery>,
    headers: HeaderMap,
) -> Response {
    serve(&page, &page.app_js, asset_cache(&page, &q), &headers)
}

/// Web page stylesheet
#[utoipa::path(
    get,
    path = "/static/style.css",
    tag = "web",
    operation_id = "style_css",
    params(VersionQuery),
    responses(
        (status = 200, description = "The page's stylesheet.", content_type = "text/css", body = String,
            headers(("ETag" = String), ("Cache-Control" = String), ("Content-Security-Policy" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched the `ETag`)."),
    ),
)]
async fn style_css(
    State(page): State<Arc<Page>>,
    Query(q): Query<VersionQuery>,
    headers: HeaderMap,
) -> Response {
    serve(&page, &page.style_css, asset_cache(&page, &q), &headers)
}

/// Icon
#[utoipa::path(
    get,
    path = "/favicon.svg",
    tag = "web",
    operation_id = "favicon",
    params(VersionQuery),
    responses(
        (status = 200, description = "The site icon.", content_type = "image/svg+xml", body = String,
            headers(("ETag" = String), ("Cache-Control" = String), ("Content-Security-Policy" = String))),
        (status = 304, description = "Not modified (`If-None-Match` matched the `ETag`)."),
    ),
)]
async fn favicon(
    State(page): State<Arc<Page>>,
    Query(q): Query<VersionQuery>,
    headers: HeaderMap,
) -> Response {
    serve(&page, &page.favicon, asset_cache(&page, &q), &headers)
}

/// A URL with the current version may be kept forever; any other (an old page asking for an
/// old version, or none) must revalidate, or a cache would pin it to whatever it got first.
fn asset_cache(page: &Page, q: &VersionQuery) -> &'static str {
    if q.v.as_deref() == Some(page.version.as_str()) {
        IMMUTABLE
    } else {
        REVALIDATE
    }
}

fn serve(page: &Page, asset: &Asset, cache: &'static str, req: &HeaderMap) -> Response {
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &asset.etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body.clone(),
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, etag);
    }
    browser_hardening(h, page.csp.clone());
    resp
}

/// The headers every page and asset the API serves to browsers carries: its content security
/// policy, no sniffing, no referrer, no framing, its own browsing context.
pub(crate) fn browser_hardening(h: &mut HeaderMap, csp: HeaderValue) {
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

/// `If-None-Match` holds `*` or a list of (possibly weak) tags.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Everything from our own origin only; no inline script or style, no frames, no plugins.
const BASE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The page policy. Result images load straight from S3 through presigned URLs, so their
/// origin joins `img-src`; `blob:` is the preview of the photo picked, which never leaves the
/// browser before upload.
fn content_security_policy(s3: &S3Settings) -> String {
    let sources: String = s3_origins(s3).iter().map(|o| format!(" {o}")).collect();
    BASE_POLICY.replace(
        "img-src 'self' blob:",
        &format!("img-src 'self' blob:{sources}"),
    )
}

/// Where presigned GET URLs point: the public endpoint if set, else the configured endpoint
/// (with the bucket as a subdomain unless path-style), or AWS's regional S3 hosts.
fn s3_origins(s3: &S3Settings) -> Vec<String> {
    match s3.public_endpoint.as_deref().or(s3.endpoint.as_deref()) {
        Some(endpoint) => match origin(endpoint) {
            Some((scheme, authority)) => {
                let mut v = vec![format!("{scheme}://{authority}")];
                if !s3.path_style {
                    v.push(format!("{scheme}://*.{authority}"));
                }
                v
            }
            None => {
                tracing::warn!(
                    endpoint,
                    "S3 endpoint has no usable origin; the page will not show result images"
                );
                Vec::new()
            }
        },
        None => {
            let region = &s3.region;
            let ok = !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if ok {
                vec![
                    format!("https://s3.{region}.amazonaws.com"),
                    format!("https://*.s3.{region}.amazonaws.com"),
                ]
            } else {
                vec!["https://*.amazonaws.com".to_owned()]
            }
        }
    }
}

/// `http://Host:9000/some/path` → (`http`, `host:9000`); `None` for anything that is not a
/// plain http(s) URL with characters a CSP source may hold.
fn origin(url: &str) -> Option<(&'static str, String)> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http", r)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials in the endpoint are not part of the origin.
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then(|| (scheme, authority.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: Option<&str>, path_style: bool) -> S3Settings {
        S3Settings {
            endpoint: endpoint.map(str::to_owned),
            public_endpoint: None,
            region: "eu-central-1".into(),
            bucket: "facecraft".into(),
            path_style,
            timeout_secs: 30,
            presign_expiry_secs: 900,
            access_key_id: None,
            secret_access_key: None,
        }
    }

    #[test]
    fn csp_allows_images_from_the_s3_origin_only() {
        let csp = content_security_policy(&s3(Some("http://127.0.0.1:8333/"), true));
        assert!(
            csp.contains("img-src 'self' blob: http://127.0.0.1:8333;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn the_public_endpoint_is_where_images_come_from() {
        let mut settings = s3(Some("http://seaweed:8333"), true);
        settings.public_endpoint = Some("https://s3.example.org".into());
        assert_eq!(s3_origins(&settings), ["https://s3.example.org"]);
    }

    #[test]
    fn s3_origins_follow_the_addressing_style() {
        assert_eq!(
            s3_origins(&s3(
                Some("https://User:pw@Minio.Example:9000/base?x"),
                false
            )),
            ["https://minio.example:9000", "https://*.minio.example:9000"]
        );
        assert_eq!(
            s3_origins(&s3(None, false)),
            [
                "https://s3.eu-central-1.amazonaws.com",
                "https://*.s3.eu-central-1.amazonaws.com"
            ]
        );
        // Nothing that could break out of the policy gets in.
        assert!(s3_origins(&s3(Some("http://evil; script-src *"), true)).is_empty());
        let csp = content_security_policy(&s3(Some("http://evil; script-src *"), true));
        assert!(csp.contains("img-src 'self' blob:;"), "{csp}");
    }

    #[test]
    fn etags_match_strong_weak_and_star() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }

    #[test]
    fn index_points_at_versioned_assets() {
        assert!(INDEX_HTML.contains(&format!("/static/app.js?v={VERSION_MARK}")));
        assert!(INDEX_HTML.contains(&format!("/static/style.css?v={VERSION_MARK}")));
        // No inline script or style: the policy would block them.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
    }
}
