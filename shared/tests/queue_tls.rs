//! `rediss://`: the queue over TLS to a real redis-server (Debian's is built with TLS), with a
//! certificate authority made for the test by `openssl` and trusted through `SSL_CERT_FILE`, as
//! an operator trusts a managed Redis's private CA. A client that does not trust the CA must
//! fail to connect, not fall back to plain text.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facecraft_contract::job::{now_ms, Job, JobId, JobParams, JobState, ObjectRef, OutputSpec};
use facecraft_shared::config::{QueueSettings, RedisSettings};
use facecraft_shared::queue::{Enqueued, Queue};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("running openssl (scripts/ci-deps installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for localhost and 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=facecraft-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_server(dir: &Path, port: u16) -> Server {
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "s3cret",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting redis-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server's TLS port never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server(child)
}

fn job() -> Job {
    Job {
        id: JobId::new(),
        tenant: "tls".into(),
        input: ObjectRef {
            bucket: "b".into(),
            key: "in.png".into(),
        },
        params: JobParams::default(),
        output: OutputSpec {
            bucket: "b".into(),
            prefix: "out/".into(),
        },
        idempotency_key: None,
        created_at_ms: now_ms(),
    }
}

fn settings(port: u16) -> RedisSettings {
    let s = RedisSettings {
        url: format!("rediss://:s3cret@localhost:{port}/"),
        prefix: format!("tls-{}", uuid::Uuid::now_v7().simple()),
        timeout_ms: 2_000,
        ..RedisSettings::default()
    };
    s.validate().unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_works_over_tls_and_refuses_an_untrusted_server() {
    let dir = std::env::temp_dir().join(format!("facecraft-tls-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = tls_server(&dir, port);

    // Not trusted yet: the system's roots do not include the test's CA.
    let untrusted = Queue::new(&settings(port), &QueueSettings::default()).unwrap();
    let err = untrusted.ping().await.unwrap_err().to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.to_lowercase().contains("tls"),
        "expected a TLS verification error, got: {err}"
    );

    // Trusted through SSL_CERT_FILE (read when a connection's TLS setup loads the roots). This
    // test binary holds only this test, so no other thread reads the environment meanwhile.
    std::env::set_var("SSL_CERT_FILE", dir.join("ca.pem"));
    let queue = Queue::new(&settings(port), &QueueSettings::default()).unwrap();
    queue.ping().await.unwrap();
    queue.ensure_group().await.unwrap();
    let j = job();
    assert_eq!(queue.enqueue(&j).await.unwrap(), Enqueued::Created(j.id));
    let mut consumer = queue.consumer("tls-worker").await.unwrap();
    let got = consumer.read(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job_id, Some(j.id));
    assert_eq!(
        queue.status(&j.id, None).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let _ = std::fs::remove_dir_all(&dir);
}
