//! The HTTP layer every route shares, against live APIs on real Redis and S3: request IDs
//! (echoed, in log lines and error bodies), one rate limit shared by two API processes, CORS
//! for listed origins only, compressed JSON, and the HTTP metrics.
#![allow(clippy::unwrap_used)]

#[path = "../../worker/tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use support::{Captured, Stack, StackOptions};

const ACME: &str = "acme-key-0123456789abcdef";
const MISSING_JOB: &str = "/v1/jobs/0193a0b2-7c1e-7f00-8000-000000000000";

fn keyed(per_minute: u32, burst: u32) -> StackOptions {
    StackOptions {
        api_keys: Some(format!("acme:{ACME}")),
        rate_limit_per_min: per_minute,
        rate_limit_burst: burst,
        ..StackOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_logged_and_in_error_bodies() {
    let captured = Captured::default();
    let writer = captured.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init();
    let stack = Stack::start(StackOptions::default()).await;

    // A client's ID is echoed and named in the error body, in the /v1 shape...
    let r = stack
        .http
        .get(stack.url(MISSING_JOB))
        .header("x-request-id", "client-req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "client-req-42");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "client-req-42", "{body}");
    assert_eq!(body["code"], "not_found");

    // ... and in the Python-compatible shape.
    let r = stack
        .http
        .post(stack.url("/api/v1/process"))
        .header("x-request-id", "client-req-43")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "client-req-43", "{body}");

    // Without one, or with one that could break a log line, the API makes its own.
    for sent in [None, Some("two words"), Some(&*"x".repeat(129))] {
        let mut req = stack.http.get(stack.url("/healthz"));
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let r = req.send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} for {sent:?}");
    }

    // The log lines written while serving a request carry its ID.
    stack
        .put_input(
            "in.png",
            std::fs::read(support::testdata("astronaut.png")).unwrap(),
        )
        .await;
    let r = stack
        .http
        .post(stack.url("/v1/jobs"))
        .header("x-request-id", "client-req-enqueue")
        .json(&json!({"input": {"key": "in.png"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("job enqueued"))
        .unwrap_or_else(|| panic!("no enqueue log line in:\n{logs}"));
    assert!(line.contains("request_id=client-req-enqueue"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_processes_share_one_rate_limit() {
    let stack = Stack::start(keyed(60, 4)).await;
    let replica = stack.another_api(&[]).await;
    let apis = [stack.api.clone(), replica.url.clone()];
    let mut allowed = 0;
    let mut limited = Vec::new();
    for i in 0..8 {
        let r = stack
            .http
            .get(format!("{}{MISSING_JOB}", apis[i % 2]))
            .bearer_auth(ACME)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            404 => allowed += 1,
            429 => {
                let wait: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                limited.push(wait);
            }
            other => panic!("status {other}"),
        }
    }
    // A burst of 4 across both processes, not 4 each; one more may fit if a second passed.
    assert!((4..=5).contains(&allowed), "{allowed} allowed of 8");
    assert!(limited.iter().all(|w| (1..=2).contains(w)), "{limited:?}");
    let metrics = stack
        .http
        .get(stack.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("facecraft_rate_limit_degraded 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_process_still_limits() {
    let stack = Stack::start(keyed(60, 2)).await;
    // A replica whose Redis is a closed port: it decides alone, with the same quota.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("redis://{closed}/");
    let replica = stack.another_api(&["--redis-url", &url]).await;
    // Allowed requests then fail on the missing Redis (503); the third is over the burst.
    let codes = statuses(&stack, &replica.url, 3).await;
    assert_eq!(codes, [503, 503, 429]);
    let metrics = stack
        .http
        .get(format!("{}/metrics", replica.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("facecraft_rate_limit_degraded 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("facecraft_rate_limit_local_decisions_total 3"),
        "{metrics}"
    );
}

async fn statuses(stack: &Stack, api: &str, n: usize) -> Vec<u16> {
    let mut codes = Vec::new();
    for _ in 0..n {
        let r = stack
            .http
            .get(format!("{api}{MISSING_JOB}"))
            .bearer_auth(ACME)
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_allowed_for_listed_origins_only() {
    let stack = Stack::start(StackOptions::default()).await;
    let listed = "https://hr.example.com";
    let replica = stack
        .another_api(&["--cors-origins", &format!("{listed},http://localhost:3000")])
        .await;
    let preflight = |api: &str, origin: &str| {
        stack
            .http
            .request(reqwest::Method::OPTIONS, format!("{api}/v1/jobs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let r = preflight(&replica.url, listed).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], listed);
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");

    let r = preflight(&replica.url, "https://evil.example")
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    // The default API sends no CORS headers at all.
    let r = preflight(&stack.api, listed).await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    // A real cross-origin call gets the header too, and can read the request ID.
    let r = stack
        .http
        .get(format!("{}/healthz", replica.url))
        .header("origin", listed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], listed);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_json_is_compressed_and_requests_are_counted() {
    let stack = Stack::start(StackOptions::default()).await;
    let plain = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert!(!plain.headers().contains_key("content-encoding"));
    let plain_len = plain.bytes().await.unwrap().len();
    let gz = stack
        .http
        .get(stack.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz_len = gz.bytes().await.unwrap().len();
    assert!(gz_len * 3 < plain_len, "{gz_len} of {plain_len} bytes");
    // Small answers are not worth it.
    let r = stack
        .http
        .get(stack.url("/healthz"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("content-encoding"));

    let r = stack.http.get(stack.url(MISSING_JOB)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let metrics = stack
        .http
        .get(stack.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"facecraft_http_requests_total{route="/v1/jobs/{id}",status="404"} 1"#,
        r#"facecraft_http_requests_total{route="/openapi.json",status="200"} 2"#,
        r#"facecraft_http_request_duration_seconds_count{route="/healthz"} 1"#,
        r#"facecraft_build_info{service="api",version=""#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_schema_forbids_is_refused_in_json_and_what_it_allows_is_taken() {
    let stack = Stack::start(StackOptions::default()).await;
    let get = |path: &str| stack.http.get(stack.url(path)).send();
    // An extractor's rejection (axum writes plain text) comes back as our JSON error.
    let r = get("/v1/batches/0193a0b2-7c1e-7f00-8000-000000000000/zip?bogus=1")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_request", "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    // Out of the documented range: refused, not clamped.
    for limit in ["0", "1001", "46873316828465"] {
        let r = get(&format!("/v1/dead?limit={limit}")).await.unwrap();
        assert_eq!(r.status(), 400, "limit={limit}");
    }
    assert_eq!(get("/v1/dead?limit=1000").await.unwrap().status(), 200);

    let upload = |body: reqwest::Body| {
        stack
            .http
            .post(stack.url("/v1/uploads"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // `null` and no body both mean no preferences.
    assert_eq!(upload("null".into()).await.unwrap().status(), 200);
    assert_eq!(upload(reqwest::Body::from("")).await.unwrap().status(), 200);
    for ct in ["*", "image/", "text/plain", "image/\u{1}png", "image/jp eg"] {
        let r = upload(json!({"content_type": ct}).to_string().into())
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{ct:?}");
    }
    let r = upload(json!({"content_type": "image/svg+xml"}).to_string().into())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A file field sent as text is no upload.
    let form = reqwest::multipart::Form::new().text("image", "not a file");
    let r = stack
        .http
        .post(stack.url("/v1/jobs"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("must be a file"),
        "{body}"
    );

    // JSON numbers: 600.0 is the whole number 600; `null` sub-objects are left out.
    stack
        .put_input(
            "in.png",
            std::fs::read(support::testdata("astronaut.png")).unwrap(),
        )
        .await;
    let r = stack
        .http
        .post(stack.url("/v1/jobs"))
        .json(&json!({"input": {"key": "in.png"}, "params": {"width": 600.0, "background": [1.0, 2, 3]}, "output": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["params"]["width"], 600, "{body}");
    assert_eq!(body["params"]["background"], json!([1, 2, 3]), "{body}");
}
