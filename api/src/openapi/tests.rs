//! The document is valid OpenAPI 3.1, complete, and lists exactly the routes the router serves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use clap::Parser;
use serde_json::Value;
use tower::ServiceExt;

use super::*;

fn document() -> Value {
    serde_json::from_str(&spec(50).to_json().unwrap()).unwrap()
}

#[test]
fn both_batch_routes_document_the_configured_limit() {
    let doc: Value = serde_json::from_str(&spec(7).to_json().unwrap()).unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["BatchRequest"]["properties"]["inputs"]["maxItems"],
        7
    );
    assert_eq!(schemas["BatchUpload"]["properties"]["files"]["maxItems"], 7);
}

/// `(METHOD, path)` of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                ops.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ops
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

#[test]
fn the_document_parses_as_openapi_3_1() {
    let json = spec(50).to_pretty_json().unwrap();
    let parsed = oas3::from_json(&json).expect("an OpenAPI 3.1 model reads the document");
    let version = parsed.validate_version().unwrap();
    assert_eq!((version.major, version.minor), (3, 1), "{version}");
    assert!(parsed.operations().count() >= 15);
    for (path, method, op) in parsed.operations() {
        let id = op.operation_id.as_deref().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        let summary = op.summary.as_deref().unwrap_or_default();
        assert!(!summary.is_empty(), "{method} {path} has no summary");
        assert!(!op.tags.is_empty(), "{method} {path} has no tag");
    }
    let ids: Vec<_> = parsed
        .operations()
        .filter_map(|(_, _, op)| op.operation_id.clone())
        .collect();
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operationIds repeat: {ids:?}");
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "suspiciously few $refs: {refs:?}");
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r} is not local"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[test]
fn every_operation_documents_success_and_errors() {
    let doc = document();
    let schemes: BTreeSet<_> = doc["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(schemes, ["api_key".to_owned(), "bearer".to_owned()].into());
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        let responses = op["responses"].as_object().unwrap();
        let codes: Vec<u16> = responses.keys().map(|c| c.parse().unwrap()).collect();
        // A redirect is the success of `GET /v1/jobs/{id}/result/{format}`.
        assert!(
            codes.iter().any(|c| (200..400).contains(c) && *c != 304),
            "{method} {path}: no success response in {codes:?}"
        );
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        if path.starts_with("/v1/") || path.starts_with("/api/v1/") || path == "/status" {
            assert!(secured, "{method} {path} does not declare its API key");
            for c in [401, 429, 500] {
                assert!(codes.contains(&c), "{method} {path} does not document {c}");
            }
        } else {
            assert!(!secured, "{method} {path} needs no API key");
        }
        for (code, resp) in responses {
            let description = resp["description"].as_str().unwrap_or_default();
            assert!(
                !description.is_empty(),
                "{method} {path} {code}: no description"
            );
            if code.starts_with('4') || code.starts_with('5') {
                let content = resp["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{method} {path} {code}: no body"));
                let json = &content.get("application/json");
                if let Some(json) = json {
                    let schema = json["schema"]["$ref"].as_str().unwrap_or_default();
                    let expected = match (path.as_str(), code.as_str()) {
                        ("/readyz", _) => "#/components/schemas/Readiness",
                        ("/ready", _) => "#/components/schemas/CompatReady",
                        ("/api/v1/process", _) => "#/components/schemas/ProcessResult",
                        // Out of time: the items so far, so the client can poll the batch.
                        ("/api/v1/process/batch", "504") => {
                            "#/components/schemas/CompatBatchResult"
                        }
                        (p, _) if p.starts_with("/api/v1/") || p == "/status" => {
                            "#/components/schemas/CompatError"
                        }
                        _ => "#/components/schemas/Error",
                    };
                    assert_eq!(schema, expected, "{method} {path} {code}");
                    let examples: Vec<&Value> = match json.get("examples") {
                        Some(Value::Object(m)) => m.values().map(|e| &e["value"]).collect(),
                        _ => json.get("example").into_iter().collect(),
                    };
                    assert!(!examples.is_empty(), "{method} {path} {code}: no example");
                    let field = match expected.rsplit('/').next() {
                        Some("Error") => Some("code"),
                        Some("CompatError") => Some("detail"),
                        Some("ProcessResult") => Some("error"),
                        _ => None,
                    };
                    if let Some(field) = field {
                        for e in examples {
                            let c = e[field].as_str().unwrap_or_default();
                            assert!(
                                ErrorCode::from_code(c).is_some(),
                                "{method} {path} {code}: example code `{c}` is no ErrorCode"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn every_error_code_is_in_the_document() {
    let doc = document();
    let schema = &doc["components"]["schemas"]["ErrorCode"];
    let values: Vec<&str> = schema["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The derive lists every variant; each must be a code that round-trips.
    assert_eq!(values.len(), 30, "{values:?}");
    let description = schema["description"].as_str().unwrap();
    for v in &values {
        let code = ErrorCode::from_code(v).unwrap_or_else(|| panic!("{v}"));
        assert_eq!(code.as_str(), *v);
        let (http, meaning) = error_code_doc(code);
        assert!(
            description.contains(&format!("| `{v}` | {http} | {meaning} |")),
            "{v} is not in the code table:\n{description}"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["Error"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
}

#[test]
fn presets_and_quality_reports_are_documented() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let enum_of = |name: &str| -> Vec<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is no enum: {}", schemas[name]))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(enum_of("Preset"), ["ad", "passport", "us_visa", "badge"]);
    assert_eq!(enum_of("QualityPolicy"), ["report", "strict"]);
    assert_eq!(
        enum_of("QualityWarning"),
        [
            "turned_head",
            "blurry",
            "dark",
            "overexposed",
            "padded",
            "low_resolution",
            "busy_background"
        ]
    );
    let mut refs = Vec::new();
    // Where each new schema is used: a property that refers to it (directly or through
    // oneOf/items).
    for (schema, property, target) in [
        ("JobParams", "preset", "Preset"),
        ("JobParams", "quality", "QualityPolicy"),
        ("JobResult", "quality", "QualityReport"),
        ("QualityReport", "warnings", "QualityWarning"),
        ("JobError", "warnings", "QualityWarning"),
        ("ProcessResult", "quality", "QualityReport"),
        ("CompatBatchItem", "quality", "QualityReport"),
        ("CompatError", "warnings", "QualityWarning"),
    ] {
        let prop = &schemas[schema]["properties"][property];
        refs.clear();
        collect_refs(prop, &mut refs);
        let want = format!("#/components/schemas/{target}");
        assert!(
            refs.contains(&want.as_str()),
            "{schema}.{property} does not refer to {target}: {prop}"
        );
    }
    assert!(schemas["JobParams"]["properties"]["eye_line"].is_object());
    let report = schemas["QualityReport"]["properties"].as_object().unwrap();
    for field in [
        "eye_tilt_deg",
        "yaw_deg",
        "eye_offset_pct",
        "head_height_ratio",
        "padded_pct",
        "sharpness",
        "face_luminance",
        "warnings",
    ] {
        assert!(report.contains_key(field), "QualityReport lacks {field}");
    }
}

/// Paths the router knows, read from its `Debug` output (axum offers no other way to list
/// them). If axum changes that output, this finds nothing and the test fails loudly.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let mut paths = BTreeSet::new();
    for part in debug.split("RouteId(").skip(1) {
        // `RouteId(3): "/v1/jobs/{id}"` inside the node's path map.
        if let Some(rest) = part.split_once("): \"").map(|(_, r)| r) {
            if let Some((path, _)) = rest.split_once('"') {
                // The catch-all axum adds for `.fallback(...)` is not a route of ours.
                if !path.contains("__private__axum") {
                    paths.insert(path.to_owned());
                }
            }
        }
    }
    paths
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            s if s.starts_with('{') && s.contains("format") => "png",
            s if s.starts_with('{') => "0193a4b2-7c1d-7e3f-8a9b-0c1d2e3f4a5b",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The real router, with Redis and S3 on a port nobody listens on: handlers answer 503 or
/// 4xx, which is all the probe needs to tell them from the fallbacks.
async fn router() -> axum::Router {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = crate::Settings::try_parse_from([
        "facecraft-api",
        "--auth-disabled",
        "true",
        "--redis-url",
        &format!("redis://{closed}"),
        "--s3-endpoint",
        &format!("http://{closed}"),
        "--request-timeout-secs",
        "10",
    ])
    .unwrap();
    let state = Arc::new(crate::AppState {
        queue: facecraft_shared::queue::Queue::new(&settings.redis, &settings.queue).unwrap(),
        store: facecraft_shared::store::ObjectStore::new(&settings.s3)
            .await
            .unwrap(),
        auth: crate::auth::Auth::new(&[], &[], None),
        allowed_buckets: vec![settings.s3.bucket.clone()],
        max_upload_bytes: settings.max_upload_bytes,
        streams: crate::events::Streams::new(&settings, tokio::sync::watch::channel(false).1),
        compat_wait: std::time::Duration::from_secs(settings.compat_wait_secs),
        max_batch_size: settings.max_batch_size,
        max_batch_bytes: settings.max_batch_bytes,
        started: std::time::Instant::now(),
        http_metrics: Arc::default(),
    });
    crate::routes::router(state, &settings, &spec(settings.max_batch_size))
}

/// Whether the router answered from a route rather than its 404/405 fallbacks.
async fn served(router: &axum::Router, method: &Method, path: &str) -> bool {
    let req = Request::builder()
        .method(method)
        .uri(concrete(path))
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let fallback_404 = status == StatusCode::NOT_FOUND
        && json["code"] == "not_found"
        && json["error"] == "route not found";
    let fallback_405 =
        status == StatusCode::METHOD_NOT_ALLOWED && json["code"] == "method_not_allowed";
    !(fallback_404 || fallback_405)
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let router = router().await;
    let doc = document();
    let documented = documented(&doc);
    let paths = router_paths(&router);
    assert!(
        paths.contains("/v1/jobs"),
        "router paths not found: {paths:?}"
    );
    let documented_paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(
        paths, documented_paths,
        "every path the router serves must be documented (and nothing else)"
    );
    let mut answered = BTreeSet::new();
    for path in &paths {
        for method in &METHODS {
            if served(&router, method, path).await {
                answered.insert((method.to_string(), path.clone()));
            }
        }
    }
    assert_eq!(
        answered, documented,
        "every (method, path) the router answers must be documented (and nothing else)"
    );
    // The probe itself tells fallbacks apart.
    assert!(!served(&router, &Method::GET, "/no/such/route").await);
    assert!(!served(&router, &Method::PUT, "/v1/jobs").await);
}
