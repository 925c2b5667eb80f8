//! `/v1/batches`: many inputs with shared parameters, counts by state, a zip of the results,
//! tenant isolation and all-or-nothing queueing — on real Redis, S3 and worker processes.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Read as _;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use support::{decode, testdata, Stack, StackOptions};

const LONG: Duration = Duration::from_secs(90);
const ACME: &str = "acme-key-0123456789abcdef";
const GLOBEX: &str = "globex-key-0123456789abc";

fn astronaut() -> Vec<u8> {
    std::fs::read(testdata("astronaut.png")).unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// Polls the batch until `done`; panics with the last answer after `within`.
async fn wait_done(stack: &Stack, id: &str, key: Option<&str>, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let mut req = stack.http.get(stack.url(&format!("/v1/batches/{id}")));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (code, body) = send(req).await;
        assert_eq!(code, 200, "{body:#}");
        if body["done"] == true {
            return body;
        }
        assert!(Instant::now() < deadline, "batch never finished: {body:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_batch_counts_states_and_zips_the_results() {
    let stack = Stack::start(StackOptions::default()).await;
    let f = Form::new()
        .part("image", Part::bytes(astronaut()).file_name("one.png"))
        .part(
            "image",
            Part::bytes(b"not an image".to_vec()).file_name("two.png"),
        )
        .part("files", Part::bytes(astronaut()).file_name("three.png"))
        .text("width", "300")
        .text("height", "200")
        .text("background", "0,0,255");
    let (code, created) = send(stack.http.post(stack.url("/v1/batches")).multipart(f)).await;
    assert_eq!(code, 202, "{created:#}");
    assert_eq!(created["total"], 3);
    let id = created["id"].as_str().unwrap().to_owned();
    let jobs = created["jobs"].as_array().unwrap();
    assert_eq!(jobs[1]["filename"], "two.png");

    // Before any worker runs, every job is queued.
    let (_, before) = send(stack.http.get(stack.url(&format!("/v1/batches/{id}")))).await;
    assert_eq!(
        (
            before["done"].as_bool(),
            before["counts"]["queued"].as_u64()
        ),
        (Some(false), Some(3)),
        "{before:#}"
    );
    let (code, body) = send(stack.http.get(stack.url(&format!("/v1/batches/{id}/zip")))).await;
    assert_eq!((code, body["code"].as_str()), (409, Some("conflict")));

    let _worker = stack.spawn_worker("w1");
    let done = wait_done(&stack, &id, None, LONG).await;
    assert_eq!(done["counts"]["succeeded"], 2, "{done:#}");
    assert_eq!(done["counts"]["failed"], 1, "{done:#}");
    assert_eq!(done["counts"]["queued"], 0);
    let entries = done["jobs"].as_array().unwrap();
    assert_eq!(entries[1]["state"], "failed");
    assert_eq!(entries[1]["error"]["code"], "unsupported_format");
    let first = entries[0]["id"].as_str().unwrap();
    assert_eq!(
        entries[0]["results"]["png"],
        format!("/v1/jobs/{first}/result/png")
    );
    // Each job shares the batch's parameters.
    let (_, job) = stack.status(first).await;
    assert_eq!(
        (
            job["params"]["width"].as_u64(),
            job["params"]["height"].as_u64()
        ),
        (Some(300), Some(200))
    );

    // The zip holds each succeeded result unchanged, named by position and file name.
    let r = stack
        .http
        .get(stack.url(&format!("/v1/batches/{id}/zip")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let zip = r.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "001-one.jpg",
            "001-one.png",
            "003-three.jpg",
            "003-three.png"
        ]
    );
    for (name, job) in [("001-one.png", &entries[0]), ("003-three.png", &entries[2])] {
        let mut data = Vec::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        let jid = job["id"].as_str().unwrap();
        let stored = stack
            .get_object(&format!("results/{jid}/portrait.png"))
            .await
            .unwrap();
        assert_eq!(data, stored, "{name}");
        let img = decode(&data);
        assert_eq!(img.dimensions(), (300, 200));
        assert_eq!(
            img.get_pixel(0, 0).0,
            [0, 0, 255, 255],
            "{name}: background"
        );
    }
    let r = stack
        .http
        .get(stack.url(&format!("/v1/batches/{id}/zip?formats=jpg")))
        .send()
        .await
        .unwrap();
    let archive = zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.unwrap())).unwrap();
    assert_eq!(archive.len(), 2);
    let (code, body) = send(
        stack
            .http
            .get(stack.url(&format!("/v1/batches/{id}/zip?formats=gif"))),
    )
    .await;
    assert_eq!((code, body["code"].as_str()), (400, Some("invalid_params")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_batches_are_tenant_scoped_and_queued_all_or_nothing() {
    let stack = Stack::start(StackOptions {
        api_keys: Some(format!("acme:{ACME},globex:{GLOBEX}")),
        max_backlog: 3,
        ..StackOptions::default()
    })
    .await;
    stack.put_input("inbox/a.png", astronaut()).await;
    let body = json!({
        "inputs": [{"key": "inbox/a.png"}, {"key": "inbox/missing.png"}],
        "params": {"formats": ["png"], "width": 256, "height": 256},
        "output": {"prefix": "badges/"},
    });
    let (code, created) = send(
        stack
            .http
            .post(stack.url("/v1/batches"))
            .bearer_auth(ACME)
            .json(&body),
    )
    .await;
    assert_eq!(code, 202, "{created:#}");
    let id = created["id"].as_str().unwrap().to_owned();

    // Another tenant cannot see it or its zip; unknown ids are 404 too.
    for path in [format!("/v1/batches/{id}"), format!("/v1/batches/{id}/zip")] {
        let (code, body) = send(stack.http.get(stack.url(&path)).bearer_auth(GLOBEX)).await;
        assert_eq!(
            (code, body["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (code, _) = send(
        stack
            .http
            .get(stack.url("/v1/batches/0190a5a0-0000-7000-8000-000000000000"))
            .bearer_auth(ACME),
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = send(stack.http.get(stack.url(&format!("/v1/batches/{id}")))).await;
    assert_eq!(code, 401);

    // The backlog holds 3: two wait, so a batch of two more is refused whole, and inputs it
    // only referenced (even a presigned upload's) stay where they are.
    let presigned = "uploads/globex/0190a5a0-0000-7000-8000-000000000001/me.png";
    stack.put_input(presigned, astronaut()).await;
    let refused = json!({"inputs": [{"key": "inbox/a.png"}, {"key": presigned}]});
    let (code, body) = send(
        stack
            .http
            .post(stack.url("/v1/batches"))
            .bearer_auth(GLOBEX)
            .json(&refused),
    )
    .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (503, Some("queue_full")),
        "{body:#}"
    );
    let stats = stack.queue.stats().await.unwrap();
    assert_eq!(
        stats.stream_len, 2,
        "nothing of the refused batch was queued"
    );
    assert!(stack.get_object(presigned).await.is_some());

    // Bad requests.
    for (bad, code_want) in [
        (json!({"inputs": []}), "invalid_request"),
        (
            json!({"inputs": [{"key": "../etc/passwd"}]}),
            "invalid_request",
        ),
        (
            json!({"inputs": [{"key": "a.png"}], "params": {"width": 1}}),
            "invalid_params",
        ),
        (
            json!({"inputs": [{"key": "a.png"}], "colour": 1}),
            "invalid_params",
        ),
    ] {
        let (code, body) = send(
            stack
                .http
                .post(stack.url("/v1/batches"))
                .bearer_auth(ACME)
                .json(&bad),
        )
        .await;
        assert_eq!(
            (code, body["code"].as_str()),
            (400, Some(code_want)),
            "{bad}: {body:#}"
        );
    }

    let _worker = stack.spawn_worker("w1");
    let done = wait_done(&stack, &id, Some(ACME), LONG).await;
    assert_eq!(
        (
            done["counts"]["succeeded"].as_u64(),
            done["counts"]["failed"].as_u64()
        ),
        (Some(1), Some(1)),
        "{done:#}"
    );
    let jobs = done["jobs"].as_array().unwrap();
    assert_eq!(jobs[1]["error"]["code"], "input_not_found");
    let jid = jobs[0]["id"].as_str().unwrap();
    assert!(stack
        .get_object(&format!("badges/{jid}/portrait.png"))
        .await
        .is_some());
    let r = stack
        .http
        .get(stack.url(&format!("/v1/batches/{id}/zip")))
        .bearer_auth(ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.unwrap())).unwrap();
    assert_eq!(archive.file_names().collect::<Vec<_>>(), ["001-a.png"]);
    let mut data = Vec::new();
    archive.by_index(0).unwrap().read_to_end(&mut data).unwrap();
    assert_eq!(decode(&data).dimensions(), (256, 256));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_and_zip_limits_are_enforced() {
    let stack = Stack::start(StackOptions::default()).await;
    let (api, _stop) = stack
        .extra_api(
            None,
            &["--max-batch-size", "2", "--max-batch-bytes", "5000000"],
        )
        .await;
    let three = Form::new()
        .part("image", Part::bytes(astronaut()).file_name("a.png"))
        .part("image", Part::bytes(astronaut()).file_name("b.png"))
        .part("image", Part::bytes(astronaut()).file_name("c.png"));
    let (code, body) = send(
        stack
            .http
            .post(format!("{api}/v1/batches"))
            .multipart(three),
    )
    .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("invalid_request")),
        "{body:#}"
    );
    // The two files stored before the third was refused are gone again.
    let left = stack
        .store
        .list(&stack.bucket, "uploads/", 100)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let (code, _) = send(
        stack
            .http
            .post(format!("{api}/v1/batches"))
            .json(&json!({"inputs": [{"key": "a"}, {"key": "b"}, {"key": "c"}]})),
    )
    .await;
    assert_eq!(code, 400);
    let (code, body) = send(
        stack
            .http
            .post(format!("{api}/api/v1/process/batch"))
            .multipart(
                Form::new()
                    .part("files", Part::bytes(astronaut()).file_name("a.png"))
                    .part("files", Part::bytes(astronaut()).file_name("b.png"))
                    .part("files", Part::bytes(astronaut()).file_name("c.png")),
            ),
    )
    .await;
    assert_eq!(
        (code, body["detail"].as_str()),
        (400, Some("invalid_request")),
        "{body:#}"
    );

    // A zip over the byte limit is refused, naming its size; a smaller selection fits.
    let (api_small, _stop_small) = stack
        .extra_api(
            None,
            &["--max-upload-bytes", "1024", "--max-batch-bytes", "100000"],
        )
        .await;
    stack.put_input("in/a.png", astronaut()).await;
    let (code, created) = send(
        stack
            .http
            .post(stack.url("/v1/batches"))
            .json(&json!({"inputs": [{"key": "in/a.png"}]})),
    )
    .await;
    assert_eq!(code, 202);
    let id = created["id"].as_str().unwrap().to_owned();
    let _worker = stack.spawn_worker("w1");
    wait_done(&stack, &id, None, LONG).await;
    let (_, job) = stack
        .status(created["jobs"][0]["id"].as_str().unwrap())
        .await;
    let png_bytes = job["result"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["format"] == "png")
        .unwrap()["bytes"]
        .as_u64()
        .unwrap();
    assert!(
        png_bytes > 100_000,
        "the PNG ({png_bytes} bytes) must not fit the small limit"
    );
    let (code, body) = send(stack.http.get(format!("{api_small}/v1/batches/{id}/zip"))).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (422, Some("archive_too_large")),
        "{body:#}"
    );
    let r = stack
        .http
        .get(format!("{api_small}/v1/batches/{id}/zip?formats=jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
