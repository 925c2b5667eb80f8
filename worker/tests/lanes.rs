//! The GPU lane (DESIGN §4): restoration jobs wait in `{p}:jobs:gpu`, which only workers with
//! the restoration engine read; CPU workers never take them; without a GPU worker they fail
//! with `no_gpu_worker` after the configured time; `/status` and `/readyz` say which lanes
//! have workers. Real API, real worker processes, real Redis and S3. With the `torch` feature a
//! GPU worker (libtorch on the CPU here) also restores a job end to end.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use facecraft_contract::job::Lane;
use facecraft_shared::queue::{DeviceInfo, WorkerAnnouncement};
use serde_json::Value;
use support::{testdata, Stack, StackOptions};

fn astronaut() -> Vec<u8> {
    std::fs::read(testdata("astronaut.png")).unwrap()
}

async fn get(stack: &Stack, path: &str) -> Value {
    stack
        .http
        .get(stack.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `/readyz` until `lanes` reads `want`.
async fn wait_lanes(stack: &Stack, want: Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(stack, "/readyz").await;
        if r["lanes"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "lanes never became {want}: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit(stack: &Stack, fields: &[(&str, &str)]) -> String {
    let (code, body) = stack.submit_bytes(astronaut(), fields).await;
    assert_eq!(code, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_jobs_wait_for_a_gpu_worker_and_fail_clearly_without_one() {
    let stack = Stack::start(StackOptions {
        no_gpu_worker_timeout_secs: 4,
        ..StackOptions::default()
    })
    .await;
    let _cpu = stack.spawn_worker("cpu-a");
    wait_lanes(&stack, serde_json::json!({"cpu": true, "gpu": false})).await;

    // The Python-compatible route answers within seconds: it cannot wait for a GPU node, so it
    // refuses at once, and says so.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(astronaut()).file_name("me.png"),
        )
        .text("enhance_face", "true");
    let resp = stack
        .http
        .post(stack.url("/api/v1/process"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"], "no_gpu_worker", "{body}");

    let plain = submit(&stack, &[]).await;
    let restore = submit(&stack, &[("restore", "true"), ("enhance_fidelity", "0.5")]).await;
    let q = &stack.queue;
    let gpu_len = q.lane_stats(Lane::Gpu).await.unwrap().stream_len;
    assert_eq!(gpu_len, 1, "the restore job waits in the GPU lane");

    let done = stack
        .wait_for(&plain, &["succeeded", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    // The CPU worker took the plain job and never the restore job.
    let waiting = stack.status(&restore).await.1;
    let cpu_len = q.lane_stats(Lane::Cpu).await.unwrap().stream_len;
    if waiting["state"] == "queued" {
        assert_eq!(cpu_len, 0);
        let status = get(&stack, "/status").await;
        assert_eq!(status["lanes"]["gpu"]["workers"], 0, "{status}");
        assert_eq!(status["lanes"]["gpu"]["stream_len"], 1, "{status}");
        assert_eq!(status["lanes"]["cpu"]["workers"], 1, "{status}");
    }

    let failed = stack
        .wait_for(&restore, &["failed", "succeeded"], Duration::from_secs(60))
        .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "no_gpu_worker", "{failed}");
    assert!(
        failed["started_at"].is_null(),
        "no worker ever ran it: {failed}"
    );
    let gpu_len = q.lane_stats(Lane::Gpu).await.unwrap().stream_len;
    assert_eq!(gpu_len, 0, "the failed job left the GPU lane");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_gpu_worker_keeps_the_lane_open_and_cpu_workers_leave_its_jobs() {
    let stack = Stack::start(StackOptions {
        no_gpu_worker_timeout_secs: 2,
        ..StackOptions::default()
    })
    .await;
    // A GPU worker as the queue sees one: announced on the GPU lane, busy elsewhere.
    let gpu = stack.queue.clone().for_lane(Lane::Gpu);
    let me = WorkerAnnouncement {
        name: "gpu-a".into(),
        version: "test".into(),
        device: DeviceInfo {
            kind: "cuda".into(),
            name: None,
            cuda_version: None,
        },
        models: BTreeMap::new(),
        concurrency: 1,
        lane: Lane::Gpu,
    };
    gpu.announce(&me, Duration::from_secs(60)).await.unwrap();
    let _cpu = stack.spawn_worker("cpu-a");
    wait_lanes(&stack, serde_json::json!({"cpu": true, "gpu": true})).await;

    let restore = submit(&stack, &[("restore", "true")]).await;
    // Several timeouts and many CPU worker sweeps later it still waits, untouched.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = stack.status(&restore).await.1;
    assert_eq!(status["state"], "queued", "{status}");
    assert_eq!(status["attempts"], 0, "{status}");
    let stats = gpu.lane_stats(Lane::Gpu).await.unwrap();
    assert_eq!((stats.stream_len, stats.pending), (1, 0), "{stats:?}");
    let compat = get(&stack, "/status").await;
    assert_eq!(compat["lanes"]["gpu"]["workers"], 1, "{compat}");

    // Cancelling a waiting GPU-lane job works as for any other.
    let resp = stack
        .http
        .delete(stack.url(&format!("/v1/jobs/{restore}")))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let cancelled = stack
        .wait_for(&restore, &["cancelled"], Duration::from_secs(10))
        .await;
    assert_eq!(cancelled["state"], "cancelled");
    gpu.retire("gpu-a").await.unwrap();
}

/// A real GPU worker: the restoration engine loaded (libtorch, on the CPU here), reading the
/// GPU lane, restoring the face of a job sent with `restore=true`.
#[cfg(feature = "torch")]
#[tokio::test(flavor = "multi_thread")]
async fn a_gpu_worker_restores_a_job_end_to_end() {
    let stack = Stack::start(StackOptions::default()).await;
    let _gpu = stack.spawn_worker_with(
        "gpu-a",
        &[
            ("FACECRAFT_RESTORER", "gfpgan"),
            ("FACECRAFT_DEVICE", "auto"),
            ("FACECRAFT_WORKER_CONCURRENCY", "1"),
            // A restoration takes seconds on these CPUs: keep the lease well above it.
            ("FACECRAFT_LEASE_TIMEOUT_MS", "60000"),
        ],
    );
    wait_lanes(&stack, serde_json::json!({"cpu": false, "gpu": true})).await;
    let status = get(&stack, "/status").await;
    assert_eq!(
        status["models"]["gfpgan-v1.4"]["type"], "restoration",
        "{status}"
    );
    let plain = submit(&stack, &[("formats", "[\"png\"]")]).await;
    let id = submit(
        &stack,
        &[
            ("restore", "true"),
            ("enhance_fidelity", "0.3"),
            ("formats", "[\"png\"]"),
        ],
    )
    .await;
    let done = stack
        .wait_for(&id, &["succeeded", "failed"], Duration::from_secs(180))
        .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(
        done["result"]["timings_ms"]["restore"].as_u64().is_some(),
        "{done}"
    );
    // The GPU worker does not read the CPU lane.
    let plain = stack.status(&plain).await.1;
    assert_eq!(plain["state"], "queued", "{plain}");
}
