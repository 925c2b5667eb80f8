//! Live progress and metrics through the real API, Redis, S3 and worker processes: the
//! server-sent events of `GET /v1/jobs/{id}/events` and the Prometheus text of `/metrics` on
//! the API and on a worker, parsed and checked by value.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use support::{env, testdata, Stack, StackOptions, Worker};

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
    let mut stack = Stack::start(keyed()).await;
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
    stack
        .worker_env
        .push(("FACECRAFT_WORKER_METRICS_ADDR".into(), "off".into()));
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
    let metrics = scrape(&http, &format!("{api}/metrics")).await;
    assert_eq!(metrics.value("facecraft_sse_streams", &[]), Some(1.0));
    assert_eq!(
        metrics.value("facecraft_sse_rejected_total", &[]),
        Some(1.0)
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

/// Samples of one exposition, by series (`name{label="value",...}` with labels sorted).
struct Exposition {
    samples: BTreeMap<String, f64>,
    text: String,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        let mut typed = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line == "# EOF" {
                assert!(lines.peek().is_none(), "text after # EOF");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.push(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment: {line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => {
                    let l = l.strip_suffix('}').unwrap();
                    let mut pairs: Vec<&str> = l.split(',').filter(|p| !p.is_empty()).collect();
                    for p in &pairs {
                        let (k, v) = p.split_once('=').unwrap();
                        assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                        assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                    }
                    pairs.sort_unstable();
                    (n, pairs.join(","))
                }
                None => (series, String::new()),
            };
            assert!(
                typed.iter().any(|t| name.starts_with(t.as_str())),
                "{name} has no # TYPE line before it"
            );
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let key = format!("{name}{{{labels}}}");
            assert!(
                samples.insert(key, value).is_none(),
                "duplicate series: {line}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "no # EOF at the end");
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        pairs.sort_unstable();
        self.samples
            .get(&format!("{name}{{{}}}", pairs.join(",")))
            .copied()
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }
}

/// The queue gauges of the lane these tests use.
const CPU_LANE: &[(&str, &str)] = &[("lane", "cpu")];

async fn scrape(http: &reqwest::Client, url: &str) -> Exposition {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    Exposition::parse(&r.text().await.unwrap())
}

/// The metrics address a worker logged (it was started with port 0).
async fn metrics_addr(worker: &Worker) -> String {
    let deadline = Instant::now() + LONG;
    loop {
        for line in worker.log_text().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["fields"]["message"] == "metrics listener started" {
                return v["fields"]["addr"].as_str().unwrap().to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no metrics listener in the log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_jobs_stages_and_the_queue() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let http = reqwest::Client::new();
    let api_metrics = stack.url("/metrics");

    let before = scrape(&http, &api_metrics).await;
    assert_eq!(before.get("facecraft_redis_up", &[]), 1.0);
    assert_eq!(before.get("facecraft_jobs_enqueued_total", &[]), 0.0);
    assert_eq!(before.get("facecraft_queue_length", CPU_LANE), 0.0);

    let good: Vec<String> = [
        submit(&stack, None, astronaut()).await,
        submit(&stack, None, astronaut()).await,
    ]
    .into();
    let bad = submit(&stack, None, b"this is not an image".repeat(10)).await;

    // Three jobs wait and none is delivered yet (no worker has made the group: no lag yet).
    let waiting = scrape(&http, &api_metrics).await;
    assert_eq!(waiting.get("facecraft_jobs_enqueued_total", &[]), 3.0);
    assert_eq!(waiting.get("facecraft_queue_length", CPU_LANE), 3.0);
    assert_eq!(waiting.get("facecraft_queue_pending", CPU_LANE), 0.0);
    assert_eq!(waiting.get("facecraft_queue_dead", &[]), 0.0);
    assert_eq!(waiting.get("facecraft_queue_delayed", CPU_LANE), 0.0);

    stack
        .worker_env
        .push(("FACECRAFT_WORKER_METRICS_ADDR".into(), "127.0.0.1:0".into()));
    stack
        .worker_env
        .push(("FACECRAFT_LOG_FORMAT".into(), "json".into()));
    stack
        .worker_env
        .push(("RUST_LOG".into(), "info,facecraft_worker=debug".into()));
    let worker = stack.spawn_worker("w1");
    let worker_metrics = format!("http://{}/metrics", metrics_addr(&worker).await);
    let health = http
        .get(worker_metrics.replace("/metrics", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    for id in &good {
        let done = stack
            .wait_for(id, &["succeeded", "failed", "dead"], LONG)
            .await;
        assert_eq!(done["state"], "succeeded", "{done:#}");
    }
    let done = stack
        .wait_for(&bad, &["succeeded", "failed", "dead"], LONG)
        .await;
    assert_eq!(done["error"]["code"], "unsupported_format", "{done:#}");

    // The worker counts a job once its outcome is written, just after the API can see it.
    let deadline = Instant::now() + LONG;
    let w = loop {
        let w = scrape(&http, &worker_metrics).await;
        let counted = w.value("facecraft_jobs_completed_total", &[("state", "succeeded")])
            == Some(2.0)
            && w.value("facecraft_jobs_completed_total", &[("state", "failed")]) == Some(1.0);
        if counted {
            break w;
        }
        assert!(Instant::now() < deadline, "jobs never counted:\n{}", w.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(w.get("facecraft_jobs_started_total", &[]), 3.0);
    assert_eq!(
        w.get(
            "facecraft_jobs_failed_total",
            &[("code", "unsupported_format")]
        ),
        1.0
    );
    assert_eq!(
        w.value("facecraft_jobs_completed_total", &[("state", "dead")]),
        None
    );
    assert_eq!(w.get("facecraft_job_duration_seconds_count", &[]), 3.0);
    assert!(w.get("facecraft_job_duration_seconds_sum", &[]) > 0.0);
    // Stage histograms come from the succeeded jobs' timings: one observation each.
    for stage in [
        "fetch", "decode", "detect", "segment", "compose", "encode", "store",
    ] {
        let labels = [("stage", stage)];
        assert_eq!(
            w.get("facecraft_stage_duration_seconds_count", &labels),
            2.0,
            "{stage}"
        );
        let inf = [("stage", stage), ("le", "+Inf")];
        assert_eq!(w.get("facecraft_stage_duration_seconds_bucket", &inf), 2.0);
    }
    let total_ms: u64 = done_timings(&stack, &good).await;
    let sum: f64 = w
        .samples
        .iter()
        .filter(|(k, _)| k.starts_with("facecraft_stage_duration_seconds_sum{"))
        .map(|(_, v)| v)
        .sum();
    assert!(
        (sum - total_ms as f64 / 1000.0).abs() < 1e-6,
        "stage sums {sum} s, timings {total_ms} ms"
    );
    assert_eq!(w.get("facecraft_worker_busy_slots", &[]), 0.0);
    assert_eq!(w.get("facecraft_worker_slots", &[]), 2.0);
    assert_eq!(w.get("facecraft_redis_up", &[]), 1.0);
    assert_eq!(w.get("facecraft_queue_length", CPU_LANE), 0.0);
    assert_eq!(w.get("facecraft_queue_pending", CPU_LANE), 0.0);
    assert_eq!(w.get("facecraft_queue_lag", CPU_LANE), 0.0);

    // The API sees the same drained queue; its enqueue counter is unchanged.
    let after = scrape(&http, &api_metrics).await;
    assert_eq!(after.get("facecraft_queue_length", CPU_LANE), 0.0);
    assert_eq!(after.get("facecraft_queue_lag", CPU_LANE), 0.0);
    assert_eq!(after.get("facecraft_jobs_enqueued_total", &[]), 3.0);

    // Every log line of a job's own code carries its id.
    let log = worker.log_text();
    let mut progress_lines = 0;
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let target = v["target"].as_str().unwrap_or_default();
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        let of_a_job = target.starts_with("facecraft_worker::job")
            || target.starts_with("facecraft_pipeline::portrait")
            || message.starts_with("job ");
        if !of_a_job {
            continue;
        }
        let job_id = v["span"]["job_id"].as_str().unwrap_or_default();
        assert!(
            good.iter().any(|g| g == job_id) || job_id == bad,
            "a job's log line without its job_id: {line}"
        );
        if message == "progress" {
            progress_lines += 1;
        }
    }
    assert!(progress_lines >= 3, "no progress lines in:\n{log}");
}

/// Sum of the stage timings the succeeded jobs report.
async fn done_timings(stack: &Stack, ids: &[String]) -> u64 {
    let mut total = 0;
    for id in ids {
        let (_, s) = stack.status(id).await;
        total += s["result"]["timings_ms"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_without_redis() {
    let stack = Stack::start(StackOptions::default()).await;
    // A "Redis" that accepts connections and never answers: the scrape must not wait for it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let s3 = env("FACECRAFT_S3_ENDPOINT");
    let settings = facecraft_api::Settings::try_parse_from([
        "facecraft-api",
        "--addr",
        "127.0.0.1:0",
        "--redis-url",
        &url,
        "--redis-prefix",
        &stack.prefix,
        "--s3-endpoint",
        &s3,
        "--s3-bucket",
        &stack.bucket,
        "--auth-disabled",
        "true",
    ])
    .unwrap();
    let app = facecraft_api::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));

    let m = scrape(&reqwest::Client::new(), &format!("{base}/metrics")).await;
    assert_eq!(m.get("facecraft_redis_up", &[]), 0.0);
    assert_eq!(m.get("facecraft_jobs_enqueued_total", &[]), 0.0);
    assert_eq!(m.get("facecraft_sse_streams", &[]), 0.0);
    // Unknown is left out, not reported as zero.
    assert_eq!(m.value("facecraft_queue_length", &[]), None);
    assert_eq!(m.value("facecraft_queue_lag", &[]), None);
}

/// Waits for the next change notice; a hang guard, not a measured limit.
async fn notice(events: &mut facecraft_shared::queue::JobEvents, what: &str) {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap_or_else(|_| panic!("no change notice for {what}"))
        .unwrap_or_else(|| panic!("the events connection closed before {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_change_is_announced_start_and_requeue_included() {
    use facecraft_contract::job::{JobId, JobState};
    use facecraft_contract::{ErrorCode, JobError};
    use facecraft_shared::queue::{RequeueOutcome, Start};

    // No worker: the test drives the queue itself, so each change is made once, on cue.
    let stack = Stack::start(StackOptions::default()).await;
    let id = JobId::parse(&submit(&stack, None, astronaut()).await).unwrap();
    let mut events = stack.queue.subscribe(&id).await.unwrap();
    stack.queue.ensure_group().await.unwrap();
    let mut consumer = stack.queue.consumer("t1").await.unwrap();
    let deliveries = consumer.read(1, Duration::from_millis(500)).await.unwrap();
    let d = &deliveries[0];

    // queued → running: the stream's clients learn of it when the worker starts, not at the
    // first progress report or a slow poll.
    let started = stack.queue.start(d, &id, "t1").await.unwrap();
    assert!(matches!(started, Start::Run { .. }));
    notice(&mut events, "the start").await;
    let status = stack.queue.status(&id, None).await.unwrap().unwrap();
    assert_eq!(status.state, JobState::Running);

    stack
        .queue
        .fail(d, &id, &JobError::new(ErrorCode::NoFaceDetected, "none"))
        .await
        .unwrap();
    notice(&mut events, "the failure").await;

    // failed → queued again by a re-queue.
    assert_eq!(
        stack.queue.requeue(&id, None).await.unwrap(),
        RequeueOutcome::Queued
    );
    notice(&mut events, "the re-queue").await;
    let status = stack.queue.status(&id, None).await.unwrap().unwrap();
    assert_eq!(status.state, JobState::Queued);
}
