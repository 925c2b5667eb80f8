//! Authentication, tenant isolation, rate limits, back-pressure, the operator's dead-job
//! tools, and secrets kept out of logs — through the real API, Redis, S3 and workers.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{testdata, Captured, ProxyMode, Stack, StackOptions};

const LONG: Duration = Duration::from_secs(60);
const ACME: &str = "acme-key-0123456789abcdef";
const GLOBEX: &str = "globex-key-0123456789abc";
const OPS: &str = "ops-key-0123456789abcdefg";

fn keyed() -> StackOptions {
    StackOptions {
        api_keys: Some(format!("acme:{ACME},globex:{GLOBEX},ops:{OPS}")),
        admin_tenants: Some("ops".into()),
        ..StackOptions::default()
    }
}

fn astronaut() -> Vec<u8> {
    std::fs::read(testdata("astronaut.png")).unwrap()
}

async fn send(stack: &Stack, req: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = stack;
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn submit_as(stack: &Stack, key: &str, idem: Option<&str>) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(astronaut()).file_name("me.png"),
        )
        .text("formats", "[\"png\"]");
    let mut req = stack
        .http
        .post(stack.url("/v1/jobs"))
        .bearer_auth(key)
        .multipart(form);
    if let Some(k) = idem {
        req = req.header("Idempotency-Key", k);
    }
    send(stack, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_tenants_are_enforced() {
    let stack = Stack::start(keyed()).await;
    let (code, body) = send(
        &stack,
        stack
            .http
            .get(stack.url("/v1/jobs/0190a5a0-0000-7000-8000-000000000000")),
    )
    .await;
    assert_eq!((code, body["code"].as_str()), (401, Some("unauthorized")));
    let (code, _) = send(
        &stack,
        stack
            .http
            .get(stack.url("/v1/dead"))
            .header("x-api-key", "wrong-key-0123456789"),
    )
    .await;
    assert_eq!(code, 401);
    // Health endpoints stay open for probes.
    assert_eq!(
        stack
            .http
            .get(stack.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let (code, job) = submit_as(&stack, ACME, Some("badge-1")).await;
    assert_eq!(code, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/jobs/{id}");
    // Another tenant cannot see, cancel or download it; the owner (either header) and an admin can see it.
    let (code, body) = send(&stack, stack.http.get(stack.url(&path)).bearer_auth(GLOBEX)).await;
    assert_eq!((code, body["code"].as_str()), (404, Some("not_found")));
    let (code, _) = send(
        &stack,
        stack.http.delete(stack.url(&path)).bearer_auth(GLOBEX),
    )
    .await;
    assert_eq!(code, 404);
    let (code, body) = send(
        &stack,
        stack.http.get(stack.url(&path)).header("x-api-key", ACME),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = send(&stack, stack.http.get(stack.url(&path)).bearer_auth(OPS)).await;
    assert_eq!(code, 200);
    // The same idempotency key from another tenant is another job.
    let (code, other) = submit_as(&stack, GLOBEX, Some("badge-1")).await;
    assert_eq!(code, 202);
    assert_ne!(other["id"], job["id"]);
    let (code, replay) = submit_as(&stack, ACME, Some("badge-1")).await;
    assert_eq!((code, &replay["id"]), (200, &job["id"]));

    let _worker = stack.spawn_worker("w1");
    stack
        .wait_for_as(&id, Some(ACME), &["succeeded"], LONG)
        .await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let result = format!("{path}/result/png");
    let r = no_redirect
        .get(stack.url(&result))
        .bearer_auth(ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("X-Amz-Expires=900"),
        "short-lived presigned URL: {location}"
    );
    let r = no_redirect
        .get(stack.url(&result))
        .bearer_auth(GLOBEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_backlog_answer_with_retry_after() {
    let stack = Stack::start(StackOptions {
        rate_limit_per_min: 60,
        rate_limit_burst: 3,
        max_backlog: 2,
        ..keyed()
    })
    .await;
    stack.put_input("in.png", astronaut()).await;
    let job = || {
        stack
            .http
            .post(stack.url("/v1/jobs"))
            .bearer_auth(ACME)
            .json(&json!({"input": {"key": "in.png"}}))
    };
    assert_eq!(job().send().await.unwrap().status(), 202);
    assert_eq!(job().send().await.unwrap().status(), 202);
    // Backlog of 2 reached: the queue refuses instead of growing.
    let r = job().send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "queue_full");
    // Burst of 3 used up: 429 with Retry-After; other tenants are unaffected.
    let r = job().send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "rate_limited");
    let r = stack
        .http
        .get(stack.url("/v1/dead"))
        .bearer_auth(GLOBEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_and_requeues_dead_jobs() {
    let mut stack = Stack::start(keyed()).await;
    // No retries: the first S3 failure kills the job.
    stack
        .worker_env
        .push(("FACECRAFT_MAX_RETRIES".into(), "0".into()));
    stack.put_input("in.png", astronaut()).await;
    stack.s3_proxy.set(ProxyMode::Refuse);
    let worker = stack.spawn_worker("w1");
    let (code, job) = send(
        &stack,
        stack
            .http
            .post(stack.url("/v1/jobs"))
            .bearer_auth(ACME)
            .json(&json!({"input": {"key": "in.png"}})),
    )
    .await;
    assert_eq!(code, 202);
    let id = job["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/jobs/{id}");
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let (_, s) = send(&stack, stack.http.get(stack.url(&path)).bearer_auth(ACME)).await;
        if s["state"] == "dead" {
            assert_eq!(s["error"]["code"], "storage_unavailable", "{s:#}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{s:#}\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, dead) = send(
        &stack,
        stack.http.get(stack.url("/v1/dead")).bearer_auth(OPS),
    )
    .await;
    assert_eq!(dead["jobs"][0]["id"], id.as_str(), "{dead}");
    assert_eq!(dead["jobs"][0]["tenant"], "acme");
    let (_, theirs) = send(
        &stack,
        stack.http.get(stack.url("/v1/dead")).bearer_auth(GLOBEX),
    )
    .await;
    assert_eq!(
        theirs["jobs"].as_array().unwrap().len(),
        0,
        "other tenants see nothing"
    );
    let (code, _) = send(
        &stack,
        stack
            .http
            .post(stack.url(&format!("{path}/retry")))
            .bearer_auth(GLOBEX),
    )
    .await;
    assert_eq!(code, 404);

    // S3 is back; the operator re-queues it and it succeeds.
    stack.s3_proxy.set(ProxyMode::Pass);
    let (code, body) = send(
        &stack,
        stack
            .http
            .post(stack.url(&format!("{path}/retry")))
            .bearer_auth(OPS),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    // The worker may pick it up before the response is read back: any fresh start is fine.
    assert!(
        matches!(
            body["state"].as_str(),
            Some("queued" | "running" | "succeeded")
        ) && body["attempts"].as_u64() <= Some(1),
        "re-queued with attempts reset: {body}"
    );
    stack
        .wait_for_as(&id, Some(ACME), &["succeeded"], LONG)
        .await;
    let (_, dead) = send(
        &stack,
        stack.http.get(stack.url("/v1/dead")).bearer_auth(OPS),
    )
    .await;
    assert_eq!(
        dead["jobs"].as_array().unwrap().len(),
        0,
        "re-queued jobs leave the dead stream"
    );
    let (code, _) = send(
        &stack,
        stack
            .http
            .post(stack.url(&format!("{path}/retry")))
            .bearer_auth(ACME),
    )
    .await;
    assert_eq!(code, 409, "a succeeded job is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_or_error_bodies() {
    let captured = Captured::default();
    let writer = captured.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .try_init();
    let mut stack = Stack::start(keyed()).await;
    stack.worker_env.retain(|(k, _)| k != "RUST_LOG");
    stack.worker_env.push(("RUST_LOG".into(), "debug".into()));
    let worker = stack.spawn_worker("w1");
    let (_, job) = submit_as(&stack, ACME, None).await;
    let (_, bad) = send(
        &stack,
        stack
            .http
            .get(stack.url("/v1/dead"))
            .bearer_auth("acme-key-0123456789abcdeX"),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    stack
        .wait_for_as(&id, Some(ACME), &["succeeded"], LONG)
        .await;
    let secret = support::env("AWS_SECRET_ACCESS_KEY");
    let api_logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let worker_logs = worker.log_text();
    assert!(api_logs.contains("job enqueued"), "the capture works");
    assert!(worker_logs.contains("job succeeded"), "the capture works");
    for (name, text) in [
        ("api", &api_logs),
        ("worker", &worker_logs),
        ("error body", &bad.to_string()),
    ] {
        for s in [
            secret.as_str(),
            ACME,
            GLOBEX,
            OPS,
            "acme-key-0123456789abcdeX",
        ] {
            assert!(!text.contains(s), "{name} logs contain a secret");
        }
    }
}
