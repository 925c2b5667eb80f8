//! The Python service's REST API (`/api/v1/...`, `/health`, `/ready`, `/status`) on the real
//! stack: API in-process, workers as real processes, real Redis and S3, a real photo.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use support::{decode, flat_png, testdata, Stack, StackOptions};

const LONG: Duration = Duration::from_secs(60);
const ACME: &str = "acme-key-0123456789abcdef";
const GLOBEX: &str = "globex-key-0123456789abc";

fn astronaut() -> Vec<u8> {
    std::fs::read(testdata("astronaut.png")).unwrap()
}

fn form(file_field: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> Form {
    let mut f = Form::new().part(
        file_field.to_owned(),
        Part::bytes(bytes).file_name("photo.png"),
    );
    for (k, v) in fields {
        f = f.text((*k).to_owned(), (*v).to_owned());
    }
    f
}

async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    (code, headers, r.json().await.unwrap_or(Value::Null))
}

async fn get_bytes(http: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (code, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_answers_like_the_old_service_with_colours_in_rgb_order() {
    let stack = Stack::start(StackOptions::default()).await;
    let _worker = stack.spawn_worker("w1");
    // 648×400 from a square photo leaves bars of background on the sides.
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(form(
                "file",
                astronaut(),
                &[
                    ("width", "648"),
                    ("height", "400"),
                    ("background_r", "200"),
                    ("background_g", "10"),
                    ("background_b", "30"),
                    ("use_oval_mask", "false"),
                    ("return_base64", "true"),
                ],
            )),
    )
    .await;
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(body["success"], true);
    assert!(body["error"].is_null() && body["error_message"].is_null());
    assert!(body["processing_time_ms"].as_u64().unwrap() > 0, "{body:#}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(body["png_url"], format!("/api/v1/download/{id}/png"));
    assert_eq!(body["jpg_url"], format!("/api/v1/download/{id}/jpg"));

    let b64 = base64::engine::general_purpose::STANDARD;
    let png = b64.decode(body["png_base64"].as_str().unwrap()).unwrap();
    let img = decode(&png);
    assert_eq!(img.dimensions(), (648, 400));
    assert_eq!(
        img.get_pixel(3, 200).0,
        [200, 10, 30, 255],
        "background_r is red, not blue"
    );

    // The URLs download the same bytes the base64 carried, with the right types.
    let (code, ct, bytes) = get_bytes(
        &stack.http,
        &stack.url(&format!("/api/v1/download/{id}/png")),
        None,
    )
    .await;
    assert_eq!((code, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, png);
    let (code, ct, jpg) = get_bytes(
        &stack.http,
        &stack.url(&format!("/api/v1/download/{id}/jpg")),
        None,
    )
    .await;
    assert_eq!((code, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(
        jpg,
        b64.decode(body["jpg_base64"].as_str().unwrap()).unwrap()
    );
    assert!(jpg.len() <= 101_376);

    // The job is a normal job of /v1 too.
    let (code, status) = stack.status(&id).await;
    assert_eq!((code, status["state"].as_str()), (200, Some("succeeded")));
    assert_eq!(
        status["params"]["background"],
        serde_json::json!([200, 10, 30])
    );

    // `image` works as the file field too, and without base64 there is none.
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(form(
                "image",
                astronaut(),
                &[("width", "200"), ("height", "200")],
            )),
    )
    .await;
    assert_eq!(code, 200, "{body:#}");
    assert!(body.get("png_base64").is_none(), "{body:#}");

    // DELETE removes the results, the upload and the record.
    let (code, _, del) = send(stack.http.delete(stack.url(&format!("/api/v1/jobs/{id}")))).await;
    assert_eq!(
        (code, del["status"].as_str()),
        (200, Some("deleted")),
        "{del:#}"
    );
    assert!(stack
        .get_object(&format!("results/{id}/portrait.png"))
        .await
        .is_none());
    assert!(stack
        .get_object(&format!("results/{id}/portrait.jpg"))
        .await
        .is_none());
    let left = stack
        .store
        .list(&stack.bucket, &format!("uploads/default/{id}/"), 10)
        .await
        .unwrap();
    assert!(left.is_empty(), "upload left behind: {left:?}");
    let (code, _, body) = send(
        stack
            .http
            .get(stack.url(&format!("/api/v1/download/{id}/png"))),
    )
    .await;
    assert_eq!((code, body["detail"].as_str()), (404, Some("not_found")));
    assert_eq!(stack.status(&id).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_returns_the_png_and_failures_carry_a_detail_code() {
    let stack = Stack::start(StackOptions::default()).await;
    let _worker = stack.spawn_worker("w1");
    let r = stack
        .http
        .post(stack.url("/api/v1/process/quick"))
        .multipart(form("file", astronaut(), &[("size", "300")]))
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        panic!("quick answered {}: {}", r.status(), r.text().await.unwrap());
    }
    assert_eq!(r.headers()["content-type"], "image/png");
    let id = r.headers()["x-job-id"].to_str().unwrap().to_owned();
    let png = r.bytes().await.unwrap();
    assert_eq!(decode(&png).dimensions(), (300, 300));
    assert_eq!(
        stack
            .get_object(&format!("results/{id}/portrait.png"))
            .await
            .unwrap(),
        png
    );
    // Quick asks for the PNG only.
    assert!(stack
        .get_object(&format!("results/{id}/portrait.jpg"))
        .await
        .is_none());

    // A photo without a face: the old service's 400 and detail.
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process/quick"))
            .multipart(form("file", flat_png(256, 256, [90, 120, 150]), &[])),
    )
    .await;
    assert_eq!(
        (code, body["detail"].as_str()),
        (400, Some("no_face_detected")),
        "{body:#}"
    );
    assert!(body["job_id"].is_string());

    // Not an image: 400 with our stable code, from the job's failure.
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process/quick"))
            .multipart(form("file", b"%PDF-1.4 not an image".to_vec(), &[])),
    )
    .await;
    assert_eq!(
        (code, body["detail"].as_str()),
        (400, Some("unsupported_format")),
        "{body:#}"
    );

    // The full endpoint fails with its own shape, not 200 + success:false.
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(form("file", flat_png(256, 256, [90, 120, 150]), &[])),
    )
    .await;
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "no_face_detected");
    assert!(body["job_id"].is_string() && body["png_url"].is_null());

    // Parameters are validated before anything is stored or queued.
    for (k, v) in [("size", "5"), ("size", "big"), ("width", "300")] {
        let (code, _, body) = send(
            stack
                .http
                .post(stack.url("/api/v1/process/quick"))
                .multipart(form("file", astronaut(), &[(k, v)])),
        )
        .await;
        assert_eq!(
            (code, body["detail"].as_str()),
            (400, Some("invalid_params")),
            "{k}={v}: {body:#}"
        );
    }
    for (k, v) in [
        ("background_r", "300"),
        ("face_margin", "-1"),
        ("enhance_fidelity", "2"),
        ("use_oval_mask", "perhaps"),
    ] {
        let (code, _, body) = send(
            stack
                .http
                .post(stack.url("/api/v1/process"))
                .multipart(form("file", astronaut(), &[(k, v)])),
        )
        .await;
        assert_eq!(
            (code, body["error"].as_str()),
            (400, Some("invalid_params")),
            "{k}={v}: {body:#}"
        );
    }
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(Form::new().text("width", "300")),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body:#}"
    );
    // Only the two valid quick requests and the two failures left uploads.
    let uploads = stack
        .store
        .list(&stack.bucket, "uploads/", 100)
        .await
        .unwrap();
    assert_eq!(uploads.len(), 4, "{uploads:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_per_file_results_with_working_urls() {
    let stack = Stack::start(StackOptions::default()).await;
    let _worker = stack.spawn_worker("w1");
    let f = Form::new()
        .part("files", Part::bytes(astronaut()).file_name("eileen.png"))
        .part(
            "files",
            Part::bytes(b"GIF89a broken".to_vec()).file_name("broken.gif"),
        )
        .text("width", "320")
        .text("height", "240");
    let (code, headers, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process/batch"))
            .multipart(f),
    )
    .await;
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(
        (
            body["total"].as_u64(),
            body["successful"].as_u64(),
            body["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{body:#}"
    );
    assert_eq!(body["success"], false, "one file failed");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["filename"], "eileen.png");
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["filename"], "broken.gif");
    assert_eq!(
        (
            results[1]["success"].as_bool(),
            results[1]["error"].as_str()
        ),
        (Some(false), Some("unsupported_format"))
    );
    assert!(results[1]["png_url"].is_null());
    let (code, ct, png) = get_bytes(
        &stack.http,
        &stack.url(results[0]["png_url"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!((code, ct.as_str()), (200, "image/png"));
    assert_eq!(decode(&png).dimensions(), (320, 240));
    let (code, _, jpg) = get_bytes(
        &stack.http,
        &stack.url(results[0]["jpg_url"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(decode(&jpg).dimensions(), (320, 240));

    // It is a native batch as well.
    let batch_id = body["batch_id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/v1/batches/{batch_id}"));
    let (code, _, b) = send(
        stack
            .http
            .get(stack.url(&format!("/v1/batches/{batch_id}"))),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        (
            b["counts"]["succeeded"].as_u64(),
            b["counts"]["failed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{b:#}"
    );

    // return_base64 belongs to /process only; no file at all is refused.
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process/batch"))
            .multipart(Form::new().text("width", "300")),
    )
    .await;
    assert_eq!(
        (code, body["detail"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_tenants_and_limits_hold_on_the_old_paths() {
    let stack = Stack::start(StackOptions {
        api_keys: Some(format!("acme:{ACME},globex:{GLOBEX}")),
        max_backlog: 1,
        ..StackOptions::default()
    })
    .await;
    // No key, or a wrong one: 401, and nothing is stored.
    for key in [None, Some("wrong-key-0123456789")] {
        let mut req = stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(form("file", flat_png(64, 64, [1, 2, 3]), &[]));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (code, _, body) = send(req).await;
        assert_eq!(
            (code, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{body:#}"
        );
    }
    for path in [
        "/status",
        "/api/v1/download/0190a5a0-0000-7000-8000-000000000000/png",
    ] {
        let (code, _, body) = send(stack.http.get(stack.url(path))).await;
        assert_eq!(
            (code, body["detail"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
    }
    // Probes stay open.
    assert_eq!(
        stack
            .http
            .get(stack.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (code, _, ready) = send(stack.http.get(stack.url("/ready"))).await;
    assert_eq!((code, ready["ready"].as_bool()), (200, Some(true)));

    // Same upload limit as /v1.
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process/quick"))
            .bearer_auth(ACME)
            .multipart(form("file", vec![0u8; 5_100_000], &[])),
    )
    .await;
    assert_eq!(
        (code, body["detail"].as_str()),
        (413, Some("payload_too_large")),
        "{body:#}"
    );

    // Same backlog limit: one job waits (no worker yet), so the next is refused with 503 and
    // its upload removed again.
    let (code, body) = {
        let r = stack
            .http
            .post(stack.url("/v1/jobs"))
            .bearer_auth(ACME)
            .multipart(form("image", astronaut(), &[]))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(code, 202, "{body:#}");
    let queued = body["id"].as_str().unwrap().to_owned();
    let (code, headers, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .bearer_auth(ACME)
            .multipart(form("file", astronaut(), &[])),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (503, Some("queue_full")),
        "{body:#}"
    );
    assert!(headers.contains_key("retry-after"));
    let uploads = stack
        .store
        .list(&stack.bucket, "uploads/acme/", 100)
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1, "{uploads:?}");

    // With a worker the waiting job runs; acme processes one more.
    let _worker = stack.spawn_worker("w1");
    stack
        .wait_for_as(&queued, Some(ACME), &["succeeded"], LONG)
        .await;
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .header("x-api-key", ACME)
            .multipart(form(
                "file",
                astronaut(),
                &[("width", "300"), ("height", "300")],
            )),
    )
    .await;
    assert_eq!(code, 200, "{body:#}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    let png_url = stack.url(body["png_url"].as_str().unwrap());

    // Another tenant neither downloads nor deletes it.
    let (code, _, _) = get_bytes(&stack.http, &png_url, Some(GLOBEX)).await;
    assert_eq!(code, 404);
    let (code, _, body) = send(
        stack
            .http
            .delete(stack.url(&format!("/api/v1/jobs/{id}")))
            .bearer_auth(GLOBEX),
    )
    .await;
    assert_eq!((code, body["detail"].as_str()), (404, Some("not_found")));
    let (code, _, png) = get_bytes(&stack.http, &png_url, Some(ACME)).await;
    assert_eq!(code, 200);
    assert_eq!(decode(&png).dimensions(), (300, 300));

    // /status: the worker by name, and an average over the jobs that really ran.
    let (code, _, st) = send(stack.http.get(stack.url("/status")).bearer_auth(GLOBEX)).await;
    assert_eq!(code, 200, "{st:#}");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert!(st["uptime_seconds"].is_u64());
    let consumers = st["workers"]["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 1, "{st:#}");
    assert_eq!(consumers[0]["name"], "w1");
    assert!(consumers[0]["idle_ms"].is_u64());
    assert_eq!(
        (
            st["workers"]["seen"].as_u64(),
            st["workers"]["active"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(st["jobs"]["succeeded"], 2, "{st:#}");
    let avg = st["jobs"]["average_processing_time_ms"].as_f64().unwrap();
    assert!(avg > 0.0, "{st:#}");
    // The average is the mean of the two jobs' start-to-finish times.
    let mut sum = 0.0;
    for job in [&queued, &id] {
        let s = stack
            .wait_for_as(job, Some(ACME), &["succeeded"], LONG)
            .await;
        let ms = |k: &str| {
            humantime::parse_rfc3339(s[k].as_str().unwrap())
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as f64
        };
        sum += ms("finished_at") - ms("started_at");
    }
    assert!(
        (avg - sum / 2.0).abs() <= 1.0,
        "avg {avg}, jobs {}",
        sum / 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_runs_out_answers_504_with_a_job_id_that_still_completes() {
    let stack = Stack::start(StackOptions::default()).await;
    let (api, _stop) = stack.extra_api(None, &["--compat-wait-secs", "1"]).await;
    // No worker: the job cannot end within the wait.
    let (code, headers, body) = send(
        stack
            .http
            .post(format!("{api}/api/v1/process"))
            .multipart(form("file", astronaut(), &[])),
    )
    .await;
    assert_eq!(code, 504, "{body:#}");
    assert_eq!(
        (body["success"].as_bool(), body["error"].as_str()),
        (Some(false), Some("timeout"))
    );
    let id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"], format!("/v1/jobs/{id}"));
    let (code, _, body) = send(stack.http.get(format!("{api}/api/v1/download/{id}/png"))).await;
    assert_eq!((code, body["detail"].as_str()), (409, Some("conflict")));

    // The job was not dropped: a worker finishes it and the download works.
    let _worker = stack.spawn_worker("w1");
    stack.wait_for(&id, &["succeeded"], LONG).await;
    let (code, ct, png) = get_bytes(
        &stack.http,
        &format!("{api}/api/v1/download/{id}/png"),
        None,
    )
    .await;
    assert_eq!((code, ct.as_str()), (200, "image/png"));
    assert_eq!(decode(&png).dimensions(), (648, 648));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_when_storage_is_unreachable_and_bad_wait_settings_refused() {
    let stack = Stack::start(StackOptions::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (api, _stop) = stack
        .extra_api(Some(&format!("http://127.0.0.1:{port}")), &[])
        .await;
    let (code, _, body) = send(stack.http.get(format!("{api}/ready"))).await;
    assert_eq!(
        (code, body["s3"].as_str(), body["redis"].as_str()),
        (503, Some("unavailable"), Some("ok")),
        "{body:#}"
    );
    assert_eq!(
        stack
            .http
            .get(format!("{api}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    for (wait, valid) in [("5", true), ("0", false), ("30", false), ("abc", false)] {
        let args = [
            "facecraft-api",
            "--auth-disabled",
            "true",
            "--compat-wait-secs",
            wait,
            "--request-timeout-secs",
            "30",
        ];
        let parsed = <facecraft_api::Settings as clap::Parser>::try_parse_from(args);
        let ok = parsed.map(|s| s.validate().is_ok()).unwrap_or(false);
        assert_eq!(ok, valid, "FACECRAFT_COMPAT_WAIT_SECS={wait}");
    }
}

/// A made-up quality report, as a worker would store it.
fn report(
    warnings: Vec<facecraft_contract::job::QualityWarning>,
) -> facecraft_contract::job::QualityReport {
    facecraft_contract::job::QualityReport {
        eye_tilt_deg: 0.5,
        yaw_deg: -4.0,
        eye_offset_pct: 1.0,
        eye_height_pct: 53.0,
        head_height_ratio: 0.75,
        padded_pct: 3.5,
        background_uniformity: 0.9,
        sharpness: 150.0,
        face_luminance: 128.0,
        face_clipped_pct: 0.2,
        upscale: 0.6,
        warnings,
    }
}

/// Plays a worker for the next `n` jobs: `outcome` sees each job and says how it ends. The
/// answers then depend on the queue and the API only, not on what the pipeline makes of a photo.
async fn play_worker(
    stack: &Stack,
    n: usize,
    outcome: impl Fn(
        &facecraft_contract::job::Job,
    ) -> Result<facecraft_contract::job::JobResult, facecraft_contract::JobError>,
) -> Vec<facecraft_contract::job::Job> {
    use facecraft_shared::queue::Start;
    stack.queue.ensure_group().await.unwrap();
    let mut consumer = stack.queue.consumer("stand-in").await.unwrap();
    let deadline = std::time::Instant::now() + LONG;
    let mut jobs = Vec::new();
    while jobs.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} jobs came",
            jobs.len()
        );
        for d in consumer.read(1, Duration::from_millis(500)).await.unwrap() {
            let id = d.job_id.unwrap();
            let Start::Run { job, .. } = stack.queue.start(&d, &id, "stand-in").await.unwrap()
            else {
                panic!("job {id} did not start");
            };
            match outcome(&job) {
                Ok(result) => assert!(stack.queue.succeed(&d, &id, &result).await.unwrap()),
                Err(error) => assert!(stack.queue.fail(&d, &id, &error).await.unwrap()),
            }
            jobs.push(*job);
        }
    }
    jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_quality_reports_and_strict_failures_on_the_old_paths() {
    use facecraft_contract::job::{JobResult, Preset, QualityPolicy, QualityWarning};
    use facecraft_contract::{ErrorCode, JobError};
    use QualityWarning::{Blurry, Padded};

    let stack = Stack::start(StackOptions::default()).await;
    let strict_failure = || {
        JobError::new(
            ErrorCode::QualityRejected,
            "the portrait fails the quality check (quality=strict): blurry, padded",
        )
        .with_warnings(vec![Blurry, Padded])
    };
    let success = || JobResult {
        outputs: Vec::new(),
        face: None,
        timings_ms: [("decode".to_owned(), 7)].into(),
        quality: Some(report(vec![Padded])),
    };
    let post = |path: &str, form: Form| {
        let req = stack.http.post(stack.url(path)).multipart(form);
        tokio::spawn(send(req))
    };

    // `/process` with a preset and strict quality: the job carries both, and its failure's
    // warnings come back in the answer and in the /v1 record.
    let answer = post(
        "/api/v1/process",
        form(
            "file",
            flat_png(64, 64, [1, 2, 3]),
            &[("quality", "strict"), ("preset", "passport")],
        ),
    );
    let jobs = play_worker(&stack, 1, |_| Err(strict_failure())).await;
    let p = &jobs[0].params;
    assert_eq!((p.width, p.height), (413, 531));
    assert_eq!(p.preset, Some(Preset::Passport));
    assert_eq!(p.quality, QualityPolicy::Strict);
    let (code, _, body) = answer.await.unwrap();
    assert_eq!(code, 400, "{body:#}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "quality_rejected");
    assert_eq!(body["warnings"], serde_json::json!(["blurry", "padded"]));
    assert!(body.get("quality").is_none(), "{body:#}");
    let (_, status) = stack.status(&jobs[0].id.to_string()).await;
    assert_eq!(status["params"]["preset"], "passport");
    assert_eq!(status["params"]["width"], 413);
    assert_eq!(status["error"]["code"], "quality_rejected");
    assert_eq!(
        status["error"]["warnings"],
        serde_json::json!(["blurry", "padded"])
    );

    // A success carries its report as `quality`; given fields win over the preset.
    let answer = post(
        "/api/v1/process",
        form(
            "file",
            flat_png(64, 64, [1, 2, 3]),
            &[("preset", "us_visa"), ("height", "700")],
        ),
    );
    let jobs = play_worker(&stack, 1, |_| Ok(success())).await;
    let p = &jobs[0].params;
    assert_eq!((p.width, p.height), (600, 700));
    assert_eq!(p.background.0, [255, 255, 255]);
    let (code, _, body) = answer.await.unwrap();
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(body["success"], true);
    assert_eq!(body["quality"]["warnings"], serde_json::json!(["padded"]));
    assert_eq!(body["quality"]["head_height_ratio"], 0.75);
    assert!(body.get("warnings").is_none(), "{body:#}");
    let (_, status) = stack.status(&jobs[0].id.to_string()).await;
    assert_eq!(status["result"]["quality"], body["quality"]);

    // The other endpoints' error shape lists the warnings too.
    let answer = post(
        "/api/v1/process/quick",
        form("file", flat_png(64, 64, [1, 2, 3]), &[]),
    );
    play_worker(&stack, 1, |_| Err(strict_failure())).await;
    let (code, _, body) = answer.await.unwrap();
    assert_eq!(
        (code, body["detail"].as_str()),
        (400, Some("quality_rejected")),
        "{body:#}"
    );
    assert_eq!(body["warnings"], serde_json::json!(["blurry", "padded"]));

    // A batch: the report on the succeeded item, the warnings on the failed one.
    let f = Form::new()
        .part(
            "files",
            Part::bytes(flat_png(64, 64, [1, 2, 3])).file_name("good.png"),
        )
        .part(
            "files",
            Part::bytes(flat_png(64, 64, [1, 2, 3])).file_name("bad.png"),
        )
        .text("preset", "badge")
        .text("quality", "strict");
    let answer = post("/api/v1/process/batch", f);
    let jobs = play_worker(&stack, 2, |job| {
        assert_eq!(job.params.preset, Some(Preset::Badge));
        assert_eq!((job.params.width, job.params.height), (480, 640));
        if job.input.key.ends_with("bad.png") {
            Err(strict_failure())
        } else {
            Ok(success())
        }
    })
    .await;
    assert_eq!(jobs.len(), 2);
    let (code, _, body) = answer.await.unwrap();
    assert_eq!(code, 200, "{body:#}");
    assert_eq!(
        (body["successful"].as_u64(), body["failed"].as_u64()),
        (Some(1), Some(1)),
        "{body:#}"
    );
    let item = |name: &str| {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["filename"] == name)
            .unwrap()
            .clone()
    };
    let (good, bad) = (item("good.png"), item("bad.png"));
    assert_eq!(good["quality"]["warnings"], serde_json::json!(["padded"]));
    assert!(good.get("warnings").is_none(), "{good:#}");
    assert_eq!(bad["error"], "quality_rejected");
    assert_eq!(bad["warnings"], serde_json::json!(["blurry", "padded"]));
    assert!(bad.get("quality").is_none(), "{bad:#}");

    // An unknown preset or policy is refused before anything is queued.
    let queued = stack.queue.stats().await.unwrap().stream_len;
    for (k, v) in [("preset", "visa"), ("quality", "lenient")] {
        let (code, _, body) = send(
            stack
                .http
                .post(stack.url("/api/v1/process"))
                .multipart(form("file", flat_png(64, 64, [1, 2, 3]), &[(k, v)])),
        )
        .await;
        assert_eq!(
            (code, body["error"].as_str()),
            (400, Some("invalid_params")),
            "{k}={v}: {body:#}"
        );
    }
    let (code, _, body) = send(
        stack
            .http
            .post(stack.url("/api/v1/process/batch"))
            .multipart(form(
                "files",
                flat_png(64, 64, [1, 2, 3]),
                &[("preset", "visa")],
            )),
    )
    .await;
    assert_eq!(
        (code, body["detail"].as_str()),
        (400, Some("invalid_params")),
        "{body:#}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("one of ad, passport, us_visa, badge"),
        "{body:#}"
    );
    assert_eq!(stack.queue.stats().await.unwrap().stream_len, queued);
}

/// The Python service's response models, written out as JSON Schema in `docs/compat-schemas/`.
fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/compat-schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

#[track_caller]
fn conforms(schema_file: &str, body: &Value) {
    let v = schema(schema_file);
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema_file}: {errors:#?}\n{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_python_service_schemas() {
    let stack = Stack::start(StackOptions::default()).await;
    let worker = stack.spawn_worker("w1");

    // Success, with the old service's `result` and `download_url`.
    let (code, _, ok) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(form(
                "file",
                astronaut(),
                &[("width", "300"), ("height", "400")],
            )),
    )
    .await;
    assert_eq!(code, 200, "{ok:#}");
    conforms("process_response.json", &ok);
    let id = ok["job_id"].as_str().unwrap();
    assert_eq!(ok["download_url"], format!("/api/v1/download/{id}/png"));
    let result = &ok["result"];
    assert_eq!(result["face_detected"], true);
    assert_eq!(result["face_count"], 1);
    assert_eq!(
        result["output_size"],
        serde_json::json!({"width": 300, "height": 400})
    );
    let face = &result["face_position"];
    assert!(face["width"].as_i64().unwrap() > 50, "{face}");
    // The size is the PNG's, as downloaded.
    let (_, _, png) = get_bytes(
        &stack.http,
        &stack.url(&format!("/api/v1/download/{id}/png")),
        None,
    )
    .await;
    assert_eq!(result["file_size_bytes"].as_u64(), Some(png.len() as u64));

    // Failures keep the shape: by input (a job ran) and by a bad field (none did).
    let (code, _, no_face) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(form("file", flat_png(400, 400, [120, 130, 140]), &[])),
    )
    .await;
    assert_eq!(code, 400, "{no_face:#}");
    conforms("process_response.json", &no_face);
    assert!(no_face["result"].is_null() && no_face["download_url"].is_null());
    let (code, _, bad) = send(
        stack
            .http
            .post(stack.url("/api/v1/process"))
            .multipart(form("file", astronaut(), &[("face_margin", "9")])),
    )
    .await;
    assert_eq!(code, 400, "{bad:#}");
    conforms("process_response.json", &bad);

    // A batch of one good and one broken file.
    let f = Form::new()
        .part("files", Part::bytes(astronaut()).file_name("eileen.png"))
        .part(
            "files",
            Part::bytes(b"GIF89a broken".to_vec()).file_name("broken.gif"),
        );
    let (code, _, batch) = send(
        stack
            .http
            .post(stack.url("/api/v1/process/batch"))
            .multipart(f),
    )
    .await;
    assert_eq!(code, 200, "{batch:#}");
    conforms("batch_response.json", &batch);
    assert_eq!(batch["job_id"], batch["batch_id"]);
    let items = batch["results"].as_array().unwrap();
    assert!(
        items[0]["download_url"].as_str().unwrap().ends_with("/png"),
        "{batch:#}"
    );
    assert!(items[1]["download_url"].is_null() && items[1]["success"] == false);

    // The FastAPI error shape of the other routes.
    let (code, _, missing) = send(
        stack
            .http
            .get(stack.url("/api/v1/download/0190a5a0-0000-7000-8000-000000000000/png")),
    )
    .await;
    assert_eq!(code, 404);
    conforms("error_response.json", &missing);

    // Probes and status, with the live worker's device and models; counters from the jobs above.
    let (_, _, health) = send(stack.http.get(stack.url("/health"))).await;
    conforms("health_response.json", &health);
    let (code, _, ready) = send(stack.http.get(stack.url("/ready"))).await;
    assert_eq!(code, 200);
    conforms("ready_response.json", &ready);
    assert_eq!(ready["models_loaded"], true, "{ready:#}");
    let (code, _, status) = send(stack.http.get(stack.url("/status"))).await;
    assert_eq!(code, 200);
    conforms("status_response.json", &status);
    assert_eq!(status["device"]["type"], "cpu", "{status:#}");
    let models = status["models"].as_object().unwrap();
    assert!(
        models.values().any(|m| m["type"] == "detection")
            && models.values().any(|m| m["type"] == "segmentation"),
        "{status:#}"
    );
    let stats = &status["statistics"];
    // Succeeded: the process and the batch's good file; failed: no face and the broken file.
    assert_eq!(stats["total_processed"], 4, "{status:#}");
    assert_eq!(stats["success_rate"], 0.5, "{status:#}");
    assert!(stats["avg_processing_ms"].as_f64().unwrap() > 0.0);

    // A worker that stops withdraws its announcement: no models, no device. (One killed
    // outright is forgotten when its announcement expires, 30 s later.)
    let mut worker = worker;
    worker.sigterm();
    assert!(worker.wait_exit(LONG).await.success());
    let (_, _, ready) = send(stack.http.get(stack.url("/ready"))).await;
    assert_eq!(ready["models_loaded"], false, "{ready:#}");
    let (_, _, status) = send(stack.http.get(stack.url("/status"))).await;
    conforms("status_response.json", &status);
    assert_eq!(status["device"]["type"], "none");
}
