//! End to end on a real redis-server and a real S3 server: API in-process, workers as real
//! processes. Each test has its own Redis prefix and bucket.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{decode, testdata, ProxyMode, Stack, StackOptions};

const LONG: Duration = Duration::from_secs(60);

fn astronaut() -> Vec<u8> {
    std::fs::read(testdata("astronaut.png")).unwrap()
}

fn output<'a>(status: &'a Value, format: &str) -> &'a Value {
    status["result"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["format"] == format)
        .unwrap_or_else(|| panic!("no {format} output in {status:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_is_processed_into_sized_portraits() {
    let stack = Stack::start(StackOptions::default()).await;
    let _worker = stack.spawn_worker("w1");
    // 648×400 from a square photo leaves bars of background on the sides.
    let (code, body) = stack
        .submit_bytes(
            astronaut(),
            &[
                ("width", "648"),
                ("height", "400"),
                ("background", "10,200,30"),
            ],
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["state"], "queued");
    let id = body["id"].as_str().unwrap().to_owned();

    let done = stack
        .wait_for(&id, &["succeeded", "failed", "dead"], LONG)
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["attempts"], 1);
    for stage in ["fetch", "decode", "compose", "encode", "store"] {
        assert!(
            done["result"]["timings_ms"][stage].is_u64(),
            "no {stage} timing: {done:#}"
        );
    }

    let png = output(&done, "png");
    assert_eq!(png["key"], format!("results/{id}/portrait.png"));
    assert_eq!(
        (png["width"].as_u64(), png["height"].as_u64()),
        (Some(648), Some(400))
    );
    let png_bytes = stack
        .get_object(png["key"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(png_bytes.len() as u64, png["bytes"].as_u64().unwrap());
    let img = decode(&png_bytes);
    assert_eq!(img.dimensions(), (648, 400));
    assert_eq!(
        img.get_pixel(3, 200).0,
        [10, 200, 30, 255],
        "left bar is the background"
    );
    assert_eq!(
        img.get_pixel(644, 10).0,
        [10, 200, 30, 255],
        "right bar is the background"
    );
    assert_ne!(
        img.get_pixel(324, 200).0,
        [10, 200, 30, 255],
        "the photo is in the middle"
    );

    let jpg = output(&done, "jpg");
    let jpg_bytes = stack
        .get_object(jpg["key"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        jpg_bytes.len() <= 101_376,
        "JPEG is {} bytes",
        jpg_bytes.len()
    );
    let img = decode(&jpg_bytes);
    assert_eq!(img.dimensions(), (648, 400));
    let px = img.get_pixel(3, 200).0;
    for (got, want) in px.iter().zip([10u8, 200, 30]) {
        assert!(got.abs_diff(want) <= 6, "JPEG background {px:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_reference_job_and_presigned_result_download() {
    let stack = Stack::start(StackOptions::default()).await;
    stack.put_input("inbox/me.png", astronaut()).await;
    let _worker = stack.spawn_worker("w1");
    let (code, body) = stack
        .submit_json(json!({"input": {"key": "inbox/me.png"}, "params": {"formats": ["png"]}}))
        .await;
    assert_eq!(code, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let done = stack
        .wait_for(&id, &["succeeded", "failed", "dead"], LONG)
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["result"]["outputs"].as_array().unwrap().len(), 1);

    // The status carries a presigned URL; the result endpoint redirects to one.
    let url = output(&done, "png")["url"].as_str().unwrap().to_owned();
    let via_url = reqwest::get(&url).await.unwrap();
    assert_eq!(via_url.status(), 200);
    let via_url = via_url.bytes().await.unwrap();
    let stored = stack
        .get_object(&format!("results/{id}/portrait.png"))
        .await
        .unwrap();
    assert_eq!(via_url, stored);

    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(stack.url(&format!("/v1/jobs/{id}/result/png")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let followed = stack
        .http
        .get(stack.url(&format!("/v1/jobs/{id}/result/png")))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.bytes().await.unwrap(), stored);
    // Not requested → no such result.
    let r = stack
        .http
        .get(stack.url(&format!("/v1/jobs/{id}/result/jpg")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");

    // Presigned upload → job from it.
    let up: Value = stack
        .http
        .post(stack.url("/v1/uploads"))
        .json(&json!({"filename": "big.png", "content_type": "image/png"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = stack
        .http
        .put(up["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(astronaut())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let (code, body) = stack
        .submit_json(json!({"input": {"key": up["key"]}}))
        .await;
    assert_eq!(code, 202, "{body}");
    let done = stack
        .wait_for(body["id"].as_str().unwrap(), &["succeeded", "failed"], LONG)
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_unknown_ids_and_invalid_params() {
    let stack = Stack::start(StackOptions::default()).await;
    stack.put_input("a.png", astronaut()).await;
    let req = json!({"input": {"key": "a.png"}, "idempotency_key": "order-17"});
    let (c1, b1) = stack.submit_json(req.clone()).await;
    let (c2, b2) = stack.submit_json(req).await;
    assert_eq!((c1, c2), (202, 200));
    assert_eq!(b1["id"], b2["id"]);
    // The header works too, and another key makes another job.
    let r = stack
        .http
        .post(stack.url("/v1/jobs"))
        .header("Idempotency-Key", "order-18")
        .json(&json!({"input": {"key": "a.png"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_ne!(r.json::<Value>().await.unwrap()["id"], b1["id"]);
    let stats = stack.queue.stats().await.unwrap();
    assert_eq!(stats.stream_len, 2, "the replayed request enqueued nothing");

    for id in ["0190a5a0-0000-7000-8000-000000000000", "not-a-uuid"] {
        let (code, body) = stack.status(id).await;
        assert_eq!(
            (code, body["code"].as_str()),
            (404, Some("not_found")),
            "{body}"
        );
    }

    let bad: [(Value, u16, &str); 7] = [
        (
            json!({"input": {"key": "a.png"}, "params": {"width": 0}}),
            400,
            "invalid_params",
        ),
        (
            json!({"input": {"key": "a.png"}, "params": {"widht": 10}}),
            400,
            "invalid_params",
        ),
        (
            json!({"input": {"key": "a.png"}, "params": {"background": "300,0,0"}}),
            400,
            "invalid_params",
        ),
        (
            json!({"input": {"key": "a.png"}, "colour": 1}),
            400,
            "invalid_params",
        ),
        (
            json!({"input": {"key": "../etc/passwd"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"input": {"bucket": "someone-else", "key": "a.png"}}),
            403,
            "invalid_request",
        ),
        (json!({"nothing": true}), 400, "invalid_params"),
    ];
    for (body, status, code) in bad {
        let (got, resp) = stack.submit_json(body.clone()).await;
        assert_eq!(
            (got, resp["code"].as_str()),
            (status, Some(code)),
            "{body} → {resp}"
        );
        assert!(resp["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let r = stack
        .http
        .post(stack.url("/v1/jobs"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_request");
    let r = stack
        .http
        .post(stack.url("/v1/jobs"))
        .body("x")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Multipart without an image, and with out-of-range params.
    let (code, body) = stack
        .submit_bytes(astronaut(), &[("face_margin", "9")])
        .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("invalid_params")),
        "{body}"
    );
    let form = reqwest::multipart::Form::new().text("width", "100");
    let r = stack
        .http
        .post(stack.url("/v1/jobs"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Over the upload limit (5 MB in these tests), several times: the server reads the rest of
    // each refused body, so the pooled connection stays good for the next request.
    for _ in 0..5 {
        let (code, body) = stack.submit_bytes(vec![0u8; 6_000_000], &[]).await;
        assert_eq!(code, 413, "{body}");
        let health = stack.http.get(stack.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    let http = &stack.http;
    let stats = stack.queue.stats().await.unwrap();
    assert_eq!(stats.stream_len, 2, "no bad request enqueued anything");

    let health = http.get(stack.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(stack.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preset_stands_in_for_the_params_not_given() {
    // No worker: the status records of queued jobs show the parameters they will run with.
    let stack = Stack::start(StackOptions::default()).await;
    let (code, body) = stack
        .submit_json(json!({"input": {"key": "a.png"}, "params": {"preset": "passport", "quality": "strict"}}))
        .await;
    assert_eq!(code, 202, "{body}");
    let (_, status) = stack.status(body["id"].as_str().unwrap()).await;
    let p = &status["params"];
    assert_eq!(
        (&p["width"], &p["height"]),
        (&json!(413), &json!(531)),
        "{p:#}"
    );
    assert_eq!(p["preset"], "passport", "{p:#}");
    assert_eq!(p["oval_mask"], false, "{p:#}");
    assert_eq!(p["quality"], "strict", "{p:#}");
    assert!(
        (p["eye_line"].as_f64().unwrap() - 0.47).abs() < 1e-6,
        "{p:#}"
    );

    // As form fields, given ones win over the preset.
    let (code, body) = stack
        .submit_bytes(astronaut(), &[("width", "700"), ("preset", "us_visa")])
        .await;
    assert_eq!(code, 202, "{body}");
    let (_, status) = stack.status(body["id"].as_str().unwrap()).await;
    let p = &status["params"];
    assert_eq!(
        (&p["width"], &p["height"]),
        (&json!(700), &json!(600)),
        "{p:#}"
    );
    assert_eq!(p["background"], json!([255, 255, 255]), "{p:#}");
    assert_eq!(p["quality"], "report", "{p:#}");

    // Without a preset nothing changes: no `preset` in the record, the old defaults.
    let (_, body) = stack.submit_json(json!({"input": {"key": "a.png"}})).await;
    let p = &body["params"];
    assert!(p.get("preset").is_none(), "{p:#}");
    assert_eq!(
        (&p["width"], &p["height"]),
        (&json!(648), &json!(648)),
        "{p:#}"
    );

    for (params, says) in [
        (json!({"preset": "visa"}), "unknown preset `visa`"),
        (json!({"preset": 3}), "preset"),
        (json!({"quality": "lenient"}), "`report` or `strict`"),
        (json!({"eye_line": 0.9}), "eye_line"),
        (json!({"preset": "badge", "eye_line": 0.1}), "eye_line"),
    ] {
        let (code, body) = stack
            .submit_json(json!({"input": {"key": "a.png"}, "params": params}))
            .await;
        assert_eq!(
            (code, body["code"].as_str()),
            (400, Some("invalid_params")),
            "{params} → {body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{params} → {body}"
        );
    }
    assert_eq!(stack.queue.stats().await.unwrap().stream_len, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_queued_job_is_never_processed() {
    let stack = Stack::start(StackOptions::default()).await;
    let (code, body) = stack.submit_bytes(astronaut(), &[]).await;
    assert_eq!(code, 202);
    let id = body["id"].as_str().unwrap().to_owned();
    let r = stack
        .http
        .delete(stack.url(&format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "cancelled");
    // Cancelling twice is a conflict; cancelling nothing is 404.
    let r = stack
        .http
        .delete(stack.url(&format!("/v1/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = stack
        .http
        .delete(stack.url("/v1/jobs/0190a5a0-0000-7000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let worker = stack.spawn_worker("w1");
    // The worker consumes the entry (acks and deletes it) without running it.
    let deadline = std::time::Instant::now() + LONG;
    while stack.queue.stats().await.unwrap().stream_len > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "entry never consumed:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, status) = stack.status(&id).await;
    assert_eq!(status["state"], "cancelled");
    assert_eq!(status["attempts"], 0, "never started");
    assert!(stack
        .get_object(&format!("results/{id}/portrait.png"))
        .await
        .is_none());
    let r = stack
        .http
        .get(stack.url(&format!("/v1/jobs/{id}/result/png")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_job_is_finished_by_another() {
    let stack = Stack::start(StackOptions::default()).await;
    // A hung S3 keeps the first worker inside the job until we kill it.
    stack.s3_proxy.set(ProxyMode::Stall);
    let mut first = stack.spawn_worker("doomed");
    let (_, body) = stack.submit_bytes(astronaut(), &[]).await;
    let id = body["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, &["running"], LONG).await;
    first.kill9();
    stack.s3_proxy.set(ProxyMode::Pass);

    let second = stack.spawn_worker("rescuer");
    let done = stack
        .wait_for(&id, &["succeeded", "failed", "dead"], LONG)
        .await;
    assert_eq!(
        done["state"],
        "succeeded",
        "{done:#}\n{}",
        second.log_text()
    );
    assert_eq!(done["attempts"], 2);
    assert!(
        second.log_text().contains("took over"),
        "{}",
        second.log_text()
    );
    let keys = stack
        .store
        .list(&stack.bucket, &format!("results/{id}/"), 100)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "one object per format: {keys:?}");
    let stats = stack.queue.stats().await.unwrap();
    assert_eq!(
        (stats.stream_len, stats.pending),
        (0, 0),
        "acked and deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_killing_its_worker_ends_dead() {
    let stack = Stack::start(StackOptions {
        max_deliveries: 2,
        lease_ms: 1_000,
        ..StackOptions::default()
    })
    .await;
    stack.s3_proxy.set(ProxyMode::Stall);
    let (_, body) = stack.submit_bytes(astronaut(), &[]).await;
    let id = body["id"].as_str().unwrap().to_owned();
    for attempt in 1..=2 {
        let mut w = stack.spawn_worker(&format!("victim{attempt}"));
        let deadline = std::time::Instant::now() + LONG;
        loop {
            let (_, s) = stack.status(&id).await;
            if s["state"] == "running" && s["attempts"] == attempt {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "attempt {attempt} never started: {s:#}\n{}",
                w.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        w.kill9();
    }
    // A good job behind it must not be blocked.
    stack.s3_proxy.set(ProxyMode::Pass);
    let (_, good) = stack
        .submit_bytes(astronaut(), &[("formats", "[\"png\"]")])
        .await;
    let last = stack.spawn_worker("survivor");
    let dead = stack
        .wait_for(&id, &["dead", "succeeded", "failed"], LONG)
        .await;
    assert_eq!(dead["state"], "dead", "{dead:#}\n{}", last.log_text());
    assert_eq!(dead["error"]["code"], "worker_crashed");
    let good = stack
        .wait_for(
            good["id"].as_str().unwrap(),
            &["succeeded", "failed", "dead"],
            LONG,
        )
        .await;
    assert_eq!(good["state"], "succeeded");
    let dead_jobs = stack.queue.dead_jobs(10).await.unwrap();
    assert_eq!(dead_jobs.len(), 1);
    assert_eq!(dead_jobs[0].id, id);
    assert_eq!(
        dead_jobs[0].error.as_ref().map(|e| e.code.as_str()),
        Some("worker_crashed")
    );
    assert!(stack
        .get_object(&format!("results/{id}/portrait.png"))
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_with_their_codes() {
    let stack = Stack::start(StackOptions::default()).await;
    let _worker = stack.spawn_worker("w1");
    let (_, not_image) = stack
        .submit_bytes(b"%PDF-1.4 definitely not an image".to_vec(), &[])
        .await;
    stack.put_input("present.png", astronaut()).await;
    let (_, missing) = stack
        .submit_json(json!({"input": {"key": "nothing/here.png"}}))
        .await;
    let mut truncated = astronaut();
    truncated.truncate(truncated.len() / 3);
    let (_, cut) = stack.submit_bytes(truncated, &[]).await;
    for (job, code) in [
        (&not_image, "unsupported_format"),
        (&missing, "input_not_found"),
        (&cut, "unsupported_format"),
    ] {
        let id = job["id"].as_str().unwrap();
        let done = stack
            .wait_for(id, &["succeeded", "failed", "dead"], LONG)
            .await;
        assert_eq!(done["state"], "failed", "{done:#}");
        assert_eq!(done["error"]["code"], code, "{done:#}");
        assert_eq!(done["attempts"], 1, "permanent errors are not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_is_retried_with_backoff_until_it_returns() {
    let stack = Stack::start(StackOptions::default()).await;
    stack.s3_proxy.set(ProxyMode::Refuse);
    let worker = stack.spawn_worker("w1");
    let (_, body) = stack.submit_bytes(astronaut(), &[]).await;
    let id = body["id"].as_str().unwrap().to_owned();
    // Wait for at least two failed attempts, then bring S3 back.
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let (_, s) = stack.status(&id).await;
        if s["attempts"].as_u64().unwrap_or(0) >= 2 {
            assert_eq!(s["error"]["code"], "storage_unavailable", "{s:#}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no retries: {s:#}\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.s3_proxy.set(ProxyMode::Pass);
    let done = stack
        .wait_for(&id, &["succeeded", "failed", "dead"], LONG)
        .await;
    assert_eq!(
        done["state"],
        "succeeded",
        "{done:#}\n{}",
        worker.log_text()
    );
    assert!(done["attempts"].as_u64().unwrap() >= 2);
    assert!(
        done.get("error").is_none(),
        "a succeeded job shows no stale error"
    );
    assert!(worker.log_text().contains("transient failure: retrying"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_job_finish_before_exit() {
    let stack = Stack::start(StackOptions::default()).await;
    stack.s3_proxy.set(ProxyMode::Stall);
    let mut worker = stack.spawn_worker("w1");
    let (_, body) = stack.submit_bytes(astronaut(), &[]).await;
    let id = body["id"].as_str().unwrap().to_owned();
    stack.wait_for(&id, &["running"], LONG).await;
    worker.sigterm();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stack.s3_proxy.set(ProxyMode::Pass);
    let exit = worker.wait_exit(LONG).await;
    assert!(exit.success(), "exit {exit:?}\n{}", worker.log_text());
    let (_, s) = stack.status(&id).await;
    assert_eq!(s["state"], "succeeded", "{s:#}");
    assert_eq!(s["attempts"], 1);
    let stats = stack.queue.stats().await.unwrap();
    assert_eq!((stats.stream_len, stats.pending), (0, 0));
    // A job enqueued after shutdown waits for the next worker.
    let (_, later) = stack.submit_bytes(astronaut(), &[]).await;
    let (_, s) = stack.status(later["id"].as_str().unwrap()).await;
    assert_eq!(s["state"], "queued");
}

/// A TCP proxy in front of Redis that, once armed, holds back Redis's answers for `delay`
/// from the moment a client sends an `EVALSHA` (the enqueue script): the script runs, its
/// answer is late, as behind a stalled network or a server busy right after it.
struct LateRedis {
    addr: std::net::SocketAddr,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LateRedis {
    async fn start(upstream: String, delay: Duration) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let arm = armed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let hold = Arc::new(AtomicBool::new(false));
                let (arm, hold_up) = (arm.clone(), hold.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let chunk = &buf[..n];
                        if arm.load(Ordering::SeqCst) && chunk.windows(7).any(|w| w == b"EVALSHA") {
                            arm.store(false, Ordering::SeqCst);
                            hold_up.store(true, Ordering::SeqCst);
                        }
                        if sw.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if hold.swap(false, Ordering::SeqCst) {
                            tokio::time::sleep(delay).await;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, armed, task }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for LateRedis {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_answered_late_by_a_stalled_redis_counts_as_done() {
    use facecraft_contract::job::{Job, JobId, JobParams, ObjectRef, OutputSpec};
    use facecraft_shared::config::{QueueSettings, RedisSettings};
    use facecraft_shared::queue::{Enqueued, Queue};

    let stack = Stack::start(StackOptions::default()).await;
    let upstream = support::env("FACECRAFT_REDIS_URL")
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let late = LateRedis::start(upstream, Duration::from_millis(1000)).await;
    // A queue on the stack's keys, through the proxy, whose Redis calls give up after 400 ms.
    let redis = RedisSettings {
        url: late.url(),
        prefix: stack.prefix.clone(),
        pool_size: 2,
        timeout_ms: 400,
        ..Default::default()
    };
    let queue = Queue::new(&redis, &QueueSettings::default()).unwrap();
    let job = |key: &str| Job {
        id: JobId::new(),
        tenant: "default".into(),
        input: ObjectRef {
            bucket: stack.bucket.clone(),
            key: key.into(),
        },
        params: JobParams::default(),
        output: OutputSpec {
            bucket: stack.bucket.clone(),
            prefix: "results/".into(),
        },
        idempotency_key: None,
        created_at_ms: 0,
    };
    // Loads the script, so the stalled call is one EVALSHA.
    queue.enqueue(&job("warm.png")).await.unwrap();

    // The enqueue's answer comes a second late, past its 400 ms timeout, but the job was written
    // and the caller must hear so: a 503 here would make the client submit it again.
    late.arm();
    let slow = job("late.png");
    let got = queue.enqueue(&slow).await;
    assert!(
        matches!(got, Ok(Enqueued::Created(id)) if id == slow.id),
        "{got:?}"
    );
    assert!(stack.queue.status(&slow.id, None).await.unwrap().is_some());
    assert_eq!(stack.queue.stats().await.unwrap().stream_len, 2);
}
