//! Test harness: a real redis-server and a real S3 server (started by `scripts/dev-stack run`,
//! which exports their addresses), the API in-process on a free port, workers as real
//! processes, and a TCP proxy in front of S3 that can stall or refuse connections. The API's
//! own suites (`api/tests`) include it by path and start no worker.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use facecraft_shared::config::QueueSettings;
use facecraft_shared::queue::Queue;
use facecraft_shared::store::ObjectStore;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through `scripts/dev-stack run cargo test --workspace`")
    })
}

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name)
}

/// Everything one test owns: its own Redis prefix and bucket, an API, and the workers it starts.
pub struct Stack {
    pub prefix: String,
    pub bucket: String,
    pub api: String,
    pub http: reqwest::Client,
    pub queue: Queue,
    pub store: ObjectStore,
    pub s3_proxy: S3Proxy,
    api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The API's command line, for [`Stack::another_api`].
    api_args: Vec<String>,
    /// Extra env for worker processes.
    pub worker_env: Vec<(String, String)>,
}

pub struct StackOptions {
    pub lease_ms: u64,
    pub max_deliveries: u32,
    pub retry_base_ms: u64,
    /// `tenant:key,...`; `None` runs the API with authentication disabled.
    pub api_keys: Option<String>,
    pub admin_tenants: Option<String>,
    pub rate_limit_per_min: u32,
    pub rate_limit_burst: u32,
    pub max_backlog: u64,
    /// `FACECRAFT_NO_GPU_WORKER_TIMEOUT_SECS` of the API and the workers.
    pub no_gpu_worker_timeout_secs: u64,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            lease_ms: 2_000,
            max_deliveries: 5,
            retry_base_ms: 200,
            api_keys: None,
            admin_tenants: None,
            rate_limit_per_min: 0,
            rate_limit_burst: 10,
            max_backlog: 100_000,
            no_gpu_worker_timeout_secs: 900,
        }
    }
}

impl Stack {
    pub async fn start(opts: StackOptions) -> Self {
        let short = uuid::Uuid::now_v7().simple().to_string();
        let prefix = format!("test-{short}");
        let bucket = format!("t{}", &short[short.len() - 16..]);
        let redis_url = env("FACECRAFT_REDIS_URL");
        let endpoint = env("FACECRAFT_S3_ENDPOINT");
        let mut args: Vec<String> = [
            "facecraft-api",
            "--addr",
            "127.0.0.1:0",
            "--redis-url",
            &redis_url,
            "--redis-prefix",
            &prefix,
            "--s3-endpoint",
            &endpoint,
            "--s3-bucket",
            &bucket,
            "--max-upload-bytes",
            "5000000",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let rate = opts.rate_limit_per_min.to_string();
        let burst = opts.rate_limit_burst.to_string();
        let backlog = opts.max_backlog.to_string();
        let no_gpu = opts.no_gpu_worker_timeout_secs.to_string();
        args.extend(
            [
                "--rate-limit-per-min",
                &rate,
                "--rate-limit-burst",
                &burst,
                "--max-backlog",
                &backlog,
                "--no-gpu-worker-timeout-secs",
                &no_gpu,
            ]
            .iter()
            .map(|s| (*s).to_owned()),
        );
        match &opts.api_keys {
            Some(keys) => args.extend([
                "--auth-disabled".into(),
                "false".into(),
                "--api-keys".into(),
                keys.clone(),
            ]),
            None => args.extend(["--auth-disabled".into(), "true".into()]),
        }
        if let Some(admins) = &opts.admin_tenants {
            args.extend(["--admin-tenants".into(), admins.clone()]);
        }
        let api_args = args.clone();
        let settings = facecraft_api::Settings::try_parse_from(args).unwrap();
        let queue_settings = QueueSettings {
            lease_timeout_ms: opts.lease_ms,
            max_deliveries: opts.max_deliveries,
            retry_base_ms: opts.retry_base_ms,
            retry_max_ms: 2_000,
            ..QueueSettings::default()
        };
        let queue = Queue::new(&settings.redis, &queue_settings).unwrap();
        let store = ObjectStore::new(&settings.s3).await.unwrap();
        store.ensure_bucket(&bucket).await.unwrap();
        let app = facecraft_api::Application::build(settings).await.unwrap();
        let api = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));

        let s3_proxy = S3Proxy::start(&endpoint).await;
        let worker_env = vec![
            ("FACECRAFT_REDIS_URL".into(), redis_url),
            ("FACECRAFT_REDIS_PREFIX".into(), prefix.clone()),
            ("FACECRAFT_S3_ENDPOINT".into(), s3_proxy.endpoint()),
            ("FACECRAFT_S3_BUCKET".into(), bucket.clone()),
            ("FACECRAFT_S3_TIMEOUT_SECS".into(), "5".into()),
            (
                "FACECRAFT_LEASE_TIMEOUT_MS".into(),
                opts.lease_ms.to_string(),
            ),
            (
                "FACECRAFT_MAX_DELIVERIES".into(),
                opts.max_deliveries.to_string(),
            ),
            (
                "FACECRAFT_RETRY_BASE_MS".into(),
                opts.retry_base_ms.to_string(),
            ),
            ("FACECRAFT_RETRY_MAX_MS".into(), "2000".into()),
            (
                "FACECRAFT_NO_GPU_WORKER_TIMEOUT_SECS".into(),
                no_gpu.clone(),
            ),
            ("FACECRAFT_READ_BLOCK_MS".into(), "300".into()),
            ("FACECRAFT_REAP_INTERVAL_MS".into(), "300".into()),
            ("FACECRAFT_WORKER_CONCURRENCY".into(), "2".into()),
            ("FACECRAFT_LOG_FORMAT".into(), "text".into()),
            ("RUST_LOG".into(), "info".into()),
            // Each worker its own free port, so parallel tests never contend for 9091.
            ("FACECRAFT_WORKER_METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ];
        Self {
            prefix,
            bucket,
            api,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            queue,
            store,
            s3_proxy,
            api_stop: Some(tx),
            api_args,
            worker_env,
        }
    }

    /// Another API process on the same Redis keys and bucket, as a second replica would be.
    /// `extra` holds `--flag value` pairs that replace the first one's or are added; the
    /// process stops when the returned guard drops.
    pub async fn another_api(&self, extra: &[&str]) -> ApiReplica {
        let mut args = self.api_args.clone();
        for pair in extra.chunks(2) {
            let [flag, value] = pair else {
                panic!("another_api takes --flag value pairs, got {extra:?}")
            };
            match args.iter().position(|a| a == flag) {
                Some(i) => args[i + 1] = (*value).to_owned(),
                None => args.extend([(*flag).to_owned(), (*value).to_owned()]),
            }
        }
        let (url, tx) = spawn_api(args).await;
        ApiReplica { url, _stop: tx }
    }

    pub fn spawn_worker(&self, name: &str) -> Worker {
        self.spawn_worker_with(name, &[])
    }

    /// [`Stack::spawn_worker`] with more environment variables (set after the stack's own).
    pub fn spawn_worker_with(&self, name: &str, extra_env: &[(&str, &str)]) -> Worker {
        let log = std::env::temp_dir().join(format!("{}-{name}.log", self.prefix));
        let file = std::fs::File::create(&log).unwrap();
        // Set by cargo for the worker crate's tests only; the API's suites start no worker.
        let Some(bin) = option_env!("CARGO_BIN_EXE_facecraft-worker") else {
            panic!("workers can be started from the worker crate's tests only");
        };
        let child = Command::new(bin)
            .arg("serve")
            .envs(
                self.worker_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .envs(extra_env.iter().copied())
            .env("FACECRAFT_WORKER_NAME", name)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Worker {
            child: Some(child),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// Submits an image as multipart; returns (HTTP status, body).
    pub async fn submit_bytes(&self, bytes: Vec<u8>, fields: &[(&str, &str)]) -> (u16, Value) {
        let mut form = reqwest::multipart::Form::new().part(
            "image",
            reqwest::multipart::Part::bytes(bytes).file_name("photo.png"),
        );
        for (k, v) in fields {
            form = form.text((*k).to_owned(), (*v).to_owned());
        }
        let resp = self
            .http
            .post(self.url("/v1/jobs"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn submit_json(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/v1/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn status(&self, id: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls until the job's state is one of `states`; panics with the last record after `within`.
    pub async fn wait_for(&self, id: &str, states: &[&str], within: Duration) -> Value {
        self.wait_for_as(id, None, states, within).await
    }

    /// `wait_for`, sending `key` as a Bearer API key.
    pub async fn wait_for_as(
        &self,
        id: &str,
        key: Option<&str>,
        states: &[&str],
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let mut req = self.http.get(self.url(&format!("/v1/jobs/{id}")));
            if let Some(k) = key {
                req = req.bearer_auth(k);
            }
            let body: Value = req
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or(Value::Null);
            if states.contains(&body["state"].as_str().unwrap_or_default()) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} never reached {states:?}; last: {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn put_input(&self, key: &str, bytes: Vec<u8>) {
        let obj = facecraft_contract::job::ObjectRef {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
        };
        self.store
            .put(&obj, bytes.into(), "application/octet-stream")
            .await
            .unwrap();
    }

    pub async fn get_object(&self, key: &str) -> Option<bytes::Bytes> {
        let obj = facecraft_contract::job::ObjectRef {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
        };
        match self.store.get(&obj, 100_000_000).await {
            Ok(b) => Some(b),
            Err(facecraft_shared::store::StoreError::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }
}

/// An API started by [`Stack::another_api`]; stops when dropped.
pub struct ApiReplica {
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(tx) = self.api_stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A worker process; killed when dropped.
pub struct Worker {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What the proxy does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Pass,
    /// Accept and hold until the mode changes back to `Pass`: a hung server.
    Stall,
    /// Accept and close at once: a server that is down.
    Refuse,
}

/// TCP proxy in front of the S3 server, to inject outages without stopping the shared server.
pub struct S3Proxy {
    port: u16,
    mode: Arc<watch::Sender<ProxyMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl S3Proxy {
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, _) = watch::channel(ProxyMode::Pass);
        let mode = Arc::new(tx);
        let m = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut rx = m.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    loop {
                        let current = *rx.borrow_and_update();
                        match current {
                            ProxyMode::Refuse => return,
                            ProxyMode::Stall => {
                                if rx.changed().await.is_err() {
                                    return;
                                }
                            }
                            ProxyMode::Pass => break,
                        }
                    }
                    let Ok(mut out) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                });
            }
        });
        Self { port, mode, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Decodes an encoded image.
pub fn decode(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory(bytes).unwrap().to_rgba8()
}

impl Stack {
    /// Another API process-in-process on this stack's prefix and bucket, with authentication
    /// off, S3 at `s3_endpoint` (the real one when `None`) and extra flags such as
    /// `--compat-wait-secs 1`. Returns its base URL; it stops when the sender is dropped.
    pub async fn extra_api(
        &self,
        s3_endpoint: Option<&str>,
        extra: &[&str],
    ) -> (String, tokio::sync::oneshot::Sender<()>) {
        let redis_url = env("FACECRAFT_REDIS_URL");
        let endpoint = s3_endpoint.map_or_else(|| env("FACECRAFT_S3_ENDPOINT"), str::to_owned);
        let defaults = [
            ("--addr", "127.0.0.1:0"),
            ("--redis-url", redis_url.as_str()),
            ("--redis-prefix", self.prefix.as_str()),
            ("--s3-endpoint", endpoint.as_str()),
            ("--s3-bucket", self.bucket.as_str()),
            ("--s3-timeout-secs", "2"),
            ("--max-upload-bytes", "5000000"),
            ("--rate-limit-per-min", "0"),
            ("--auth-disabled", "true"),
        ];
        let mut args = vec!["facecraft-api".to_owned()];
        // A flag given in `extra` replaces its default (clap refuses a flag twice).
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        spawn_api(args).await
    }
}

/// Starts an API in-process with the command line `args`; returns its base URL and the sender
/// whose drop stops it.
async fn spawn_api(args: Vec<String>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let settings = facecraft_api::Settings::try_parse_from(args).unwrap();
    let app = facecraft_api::Application::build(settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    (url, tx)
}

/// A log writer for `tracing_subscriber` whose lines a test reads back.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A PNG of one flat colour: an image with no face in it.
pub fn flat_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
