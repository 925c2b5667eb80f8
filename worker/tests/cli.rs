//! The `facecraft` client (cli crate) against a real stack: API in-process with API keys,
//! a worker process, Redis and S3.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use facecraft_cli::{submit, Cli, Client, Command};
use support::{testdata, Stack, StackOptions};

const KEY: &str = "cli-test-key-0123456789abcdef";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fc-cli-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn submit_args(cli: Cli) -> facecraft_cli::SubmitArgs {
    match cli.command {
        Command::Submit(a) => a,
        Command::Status { .. } => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_waits_and_downloads_sized_portraits_and_reports_failures() {
    let stack = Stack::start(StackOptions {
        api_keys: Some(format!("acme:{KEY}")),
        ..StackOptions::default()
    })
    .await;
    let _worker = stack.spawn_worker("w1");

    let inputs = scratch("in");
    std::fs::copy(testdata("astronaut.png"), inputs.join("astronaut.png")).unwrap();
    // The same stem again in a sub-folder, and a file that is no image.
    std::fs::create_dir_all(inputs.join("more")).unwrap();
    std::fs::copy(testdata("astronaut.png"), inputs.join("more/astronaut.png")).unwrap();
    std::fs::write(inputs.join("notes.png"), b"not an image at all").unwrap();
    let out = scratch("out");

    let cli = Cli::try_parse_from([
        "facecraft",
        "--api",
        &stack.api,
        "--api-key",
        KEY,
        "submit",
        inputs.to_str().unwrap(),
        inputs.join("more").to_str().unwrap(),
        "--width",
        "300",
        "--height",
        "400",
        "--out",
        out.to_str().unwrap(),
        "--parallel",
        "2",
        "--timeout-secs",
        "180",
    ])
    .unwrap();
    let client = Client::new(&cli.api, cli.api_key.as_deref()).unwrap();
    let outcomes = submit(&client, &submit_args(cli)).await.unwrap();

    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    // Folder order: astronaut.png, notes.png, then more/astronaut.png.
    let (first, notes, second) = (&outcomes[0], &outcomes[1], &outcomes[2]);
    assert!(first.ok(), "{first:?}");
    assert!(second.ok(), "{second:?}");
    assert_eq!(first.state.as_deref(), Some("succeeded"));
    assert_eq!(
        first.written,
        vec![out.join("astronaut.png"), out.join("astronaut.jpg")]
    );
    assert_eq!(
        second.written,
        vec![out.join("astronaut-2.png"), out.join("astronaut-2.jpg")]
    );
    for path in first.written.iter().chain(&second.written) {
        let img = image::open(path).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (300, 400),
            "{}",
            path.display()
        );
    }
    assert!(!notes.ok());
    assert_eq!(notes.state.as_deref(), Some("failed"));
    assert_eq!(
        notes.error.as_ref().map(facecraft_cli::CliError::code),
        Some("unsupported_format")
    );
    assert!(notes.job_id.is_some());

    // Without --wait the client only enqueues, and `status` reads the job back.
    let cli = Cli::try_parse_from([
        "facecraft",
        "--api",
        &stack.api,
        "--api-key",
        KEY,
        "submit",
        inputs.join("astronaut.png").to_str().unwrap(),
    ])
    .unwrap();
    let client = Client::new(&cli.api, cli.api_key.as_deref()).unwrap();
    let queued = submit(&client, &submit_args(cli)).await.unwrap();
    assert!(queued[0].ok());
    let id = queued[0].job_id.clone().unwrap();
    assert!(matches!(
        queued[0].state.as_deref(),
        Some("queued" | "running")
    ));
    let status = client.status_json(&id).await.unwrap();
    assert_eq!(status["id"], id.as_str());
    stack
        .wait_for_as(&id, Some(KEY), &["succeeded"], Duration::from_secs(120))
        .await;

    std::fs::remove_dir_all(&inputs).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_params_and_inputs_are_clear_errors() {
    let stack = Stack::start(StackOptions {
        api_keys: Some(format!("acme:{KEY}")),
        ..StackOptions::default()
    })
    .await;
    let inputs = scratch("bad");
    std::fs::copy(testdata("astronaut.png"), inputs.join("a.png")).unwrap();
    let file = inputs.join("a.png");

    // A wrong key: the API's own code comes back (it reads the rest of the upload it refused,
    // so the client is never cut off mid-body), nothing is enqueued.
    let client = Client::new(&stack.api, Some("wrong-key")).unwrap();
    let cli = Cli::try_parse_from(["facecraft", "submit", file.to_str().unwrap()]).unwrap();
    let outcomes = submit(&client, &submit_args(cli)).await.unwrap();
    let e = outcomes[0].error.as_ref().unwrap();
    assert_eq!(e.code(), "unauthorized", "{e}");
    assert_eq!(stack.queue.stats().await.unwrap().stream_len, 0);

    // Parameters are checked before anything is sent.
    let client = Client::new(&stack.api, Some(KEY)).unwrap();
    let cli = Cli::try_parse_from([
        "facecraft",
        "submit",
        file.to_str().unwrap(),
        "--param",
        "face_margin=9",
    ])
    .unwrap();
    let e = submit(&client, &submit_args(cli)).await.unwrap_err();
    assert!(e.contains("face_margin"), "{e}");

    // A missing file is that file's failure; an API that is not there is `api_unreachable`.
    let cli = Cli::try_parse_from(["facecraft", "submit", "/nonexistent/x.jpg"]).unwrap();
    let outcomes = submit(&client, &submit_args(cli)).await.unwrap();
    assert_eq!(
        outcomes[0]
            .error
            .as_ref()
            .map(facecraft_cli::CliError::code),
        Some("file_unreadable")
    );
    let nowhere = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let client = Client::new(&nowhere, None).unwrap();
    let e = client
        .status("0193a1b2-0000-7000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "api_unreachable", "{e}");
    std::fs::remove_dir_all(&inputs).unwrap();
}
