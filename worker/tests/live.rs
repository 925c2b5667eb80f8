//! Live progress through the real API, Redis, S3 and worker processes: the server-sent events
//! of `GET /v1/jobs/{id}/events`, parsed and checked by value.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use support::{env, testdata, Stack, StackOptions};

/// Guards against a hang; never a measured limit.
const LONG: Duration = Duration::from_secs(90);
const ALICE: &str = "alice-key-0123456789abcdef";
const BOB: &str = "bob-key-0123456789abcdefgh";

fn keyed() -> StackOptions {
    StackOptions {
        api_keys: Some(format!("alice:{ALICE},bob:{BOB}")),
        ..StackOptions::default()
    }
}

fn astronaut() -> Vec<u8> {
    std::fs::read(testdata("astronaut.png")).unwrap()
}

async fn submit(stack: &Stack, key: Option<&str>, image: Vec<u8>) -> String {
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(image).file_name("me.png"),
        )
        .text("formats", "[\"png\"]");
    let mut req = stack.http.post(stack.url("/v1/jobs")).multipart(form);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// One parsed server-sent event.
#[derive(Debug)]
struct Sse {
    event: Option<String>,
    data: Value,
}

/// Reads an event stream to its end and returns its events. Comments (keep-alives) are
/// skipped; the test fails if the stream does not end by itself within `LONG`.
async fn read_events(mut resp: reqwest::Response) -> Vec<Sse> {
    let read = async {
        let mut buf = String::new();
        let mut events = Vec::new();
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let mut event = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    events.push(Sse {
                        event,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
            }
        }
        assert!(buf.trim().is_empty(), "stream ended mid-frame: {buf:?}");
        events
    };
    tokio::time::timeout(LONG, read)
        .await
        .expect("the event stream never ended")
}

fn events_request(stack: &Stack, id: &str, key: Option<&str>) -> reqwest::RequestBuilder {
    let mut req = stack.http.get(stack.url(&format!("/v1/jobs/{id}/events")));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req
}

/// A status record without its presigned URLs (they are signed anew on every read).
fn without_urls(mut v: Value) -> Value {
    if let Some(outs) = v["result"]["outputs"].as_array_mut() {
        for o in outs {
            let url = o["url"].take();
            assert!(url.is_string(), "an output without a URL: {o}");
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_job_from_queued_to_succeeded_for_its_tenant_only() {
    let stack = Stack::start(keyed()).await;
    let id = submit(&stack, Some(ALICE), astronaut()).await;

    // Another tenant, no key, or no such job: the same answers as GET /v1/jobs/{id}.
    let r = events_request(&stack, &id, Some(BOB)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    let r = events_request(&stack, &id, None).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = events_request(&stack, "0190a5a0-0000-7000-8000-000000000000", Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Open the stream before any worker runs, so it starts at `queued`.
    let resp = events_request(&stack, &id, Some(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let reader = tokio::spawn(read_events(resp));
    let _worker = stack.spawn_worker("w1");
    let events = reader.await.unwrap();

    assert!(
        events.iter().all(|e| e.event.as_deref() == Some("status")),
        "{events:#?}"
    );
    let states: Vec<&str> = events
        .iter()
        .map(|e| e.data["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"queued"), "{states:?}");
    assert_eq!(states.last(), Some(&"succeeded"), "{states:?}");
    assert!(events.iter().all(|e| e.data["id"] == id.as_str()));
    // Running events carry the worker's stages with a percent that never goes back.
    let running: Vec<(&str, u64)> = events
        .iter()
        .filter(|e| e.data["state"] == "running")
        .map(|e| {
            (
                e.data["progress"]["stage"].as_str().unwrap(),
                e.data["progress"]["percent"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut stages: Vec<&str> = running.iter().map(|(s, _)| *s).collect();
    stages.dedup();
    assert!(stages.len() >= 3, "too few stages seen: {running:?}");
    assert!(stages.contains(&"fetch"), "{running:?}");
    assert!(
        running.windows(2).all(|w| w[0].1 <= w[1].1),
        "percent went back: {running:?}"
    );
    assert!(running.iter().all(|(_, p)| *p < 100), "{running:?}");
    // Events are sent per change: no two in a row are the same record.
    assert!(events.windows(2).all(|w| w[0].data != w[1].data));

    // The last event is the record GET returns, presigned URLs included.
    let last = events.last().unwrap().data.clone();
    assert_eq!(last["progress"]["percent"], 100);
    let got: Value = stack
        .http
        .get(stack.url(&format!("/v1/jobs/{id}")))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = last["result"]["outputs"][0]["url"].as_str().unwrap();
    let png = reqwest::get(url).await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(
        png.bytes().await.unwrap(),
        stack
            .get_object(&format!("results/{id}/portrait.png"))
            .await
            .unwrap()
    );
    assert_eq!(without_urls(last), without_urls(got));

    // A stream on a job that has already ended sends that state once and ends.
    let events = read_events(
        events_request(&stack, &id, Some(ALICE))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].data["state"], "succeeded");
}

/// A second API on the stack's prefix and bucket, with its own settings.
async fn extra_api(stack: &Stack, extra: &[&str]) -> (String, tokio::sync::oneshot::Sender<()>) {
    let redis = env("FACECRAFT_REDIS_URL");
    let s3 = env("FACECRAFT_S3_ENDPOINT");
    let mut args = vec![
        "facecraft-api",
        "--addr",
        "127.0.0.1:0",
        "--redis-url",
        &redis,
        "--redis-prefix",
        &stack.prefix,
        "--s3-endpoint",
        &s3,
        "--s3-bucket",
        &stack.bucket,
        "--auth-disabled",
        "true",
    ];
    args.extend_from_slice(extra);
    let settings = facecraft_api::Settings::try_parse_from(args).unwrap();
    let app = facecraft_api::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    (base, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_end_on_cancel_and_streams_are_limited() {
    let stack = Stack::start(StackOptions::default()).await;
    // No worker: the job stays queued until it is cancelled.
    let id = submit(&stack, None, astronaut()).await;
    let (api, _stop) = extra_api(
        &stack,
        &["--sse-max-streams", "1", "--sse-keepalive-secs", "1"],
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{api}/v1/jobs/{id}/events");

    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let full = http.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 503);
    assert_eq!(full.headers()["retry-after"], "5");
    assert_eq!(
        full.json::<Value>().await.unwrap()["code"],
        "too_many_streams"
    );

    // Cancelling the queued job is published: the open stream shows it and ends.
    let reader = tokio::spawn(read_events(first));
    let r = stack
        .http
        .delete(stack.url(&format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = reader.await.unwrap();
    let states: Vec<&str> = events
        .iter()
        .map(|e| e.data["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["queued", "cancelled"]);

    // The slot is free again once the stream has ended.
    let deadline = Instant::now() + LONG;
    loop {
        let r = http.get(&url).send().await.unwrap();
        if r.status() == 200 {
            let events = read_events(r).await;
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].data["state"], "cancelled");
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "the stream slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
