//! Harness of the chaos test (`tests/chaos.rs`): its own redis-server and `weed mini` that it
//! may stop, kill and restart, the API in-process, and worker processes. Unlike
//! `tests/support`, nothing here uses the dev-stack's servers; only the model paths come from
//! the environment. Every process is stopped by pid when [`Lab`] is dropped, also on panic.
#![allow(dead_code, clippy::unwrap_used)]

pub mod fleet;
pub mod resp;
pub mod servers;
pub mod topology;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use facecraft_contract::job::ObjectRef;
use facecraft_shared::config::QueueSettings;
use facecraft_shared::queue::Queue;
use facecraft_shared::store::ObjectStore;

use fleet::{Fate, Fleet};
use servers::{free_ports, RedisServer, WeedServer};
use topology::Topology;

/// Which Redis deployment a lab runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisKind {
    /// One redis-server the lab may stop and restart (`Lab::redis`).
    Single,
    /// Primary, replica and three Sentinels (`Lab::topology`); a primary is judged down after
    /// `down_after_ms`.
    Sentinel { down_after_ms: u64 },
    /// Three cluster primaries (`Lab::topology`).
    Cluster,
}

/// Worker settings of the run (env names as the worker reads them).
pub struct WorkerTuning {
    pub concurrency: u32,
    pub lease_ms: u64,
    pub max_retries: u32,
    pub max_deliveries: u32,
    pub drain_timeout_secs: u64,
    pub s3_timeout_secs: u64,
}

pub struct Lab {
    pub dir: PathBuf,
    pub prefix: String,
    pub bucket: String,
    pub api: String,
    pub http: reqwest::Client,
    /// The test's own handle on the queue and the store (checks, fixtures).
    pub queue: Queue,
    pub store: ObjectStore,
    pub fleet: Arc<Mutex<Fleet>>,
    /// Locked only by the fault injector (and for the figures at the end); `None` on a
    /// Sentinel or cluster deployment, which is in `topology`.
    pub redis: tokio::sync::Mutex<Option<RedisServer>>,
    pub topology: tokio::sync::Mutex<Option<Topology>>,
    pub weed: tokio::sync::Mutex<WeedServer>,
    /// The single node's port, or the first data node's.
    pub redis_port: u16,
    api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Set when the run passed: the data and logs folder is then removed.
    pub passed: bool,
}

fn models_dir() -> PathBuf {
    std::env::var_os("FACECRAFT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/files"))
}

fn ort_dylib(models: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(PathBuf::from(p));
    }
    let lib = models.join("lib");
    let exact = lib.join("libonnxruntime.so");
    if exact.exists() {
        return Some(exact);
    }
    std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
        })
}

fn token(n: usize, alphabet: &[u8]) -> String {
    (0..n)
        .map(|_| char::from(alphabet[fastrand::usize(..alphabet.len())]))
        .collect()
}

impl Lab {
    pub async fn start(tuning: &WorkerTuning) -> Self {
        Self::start_on(tuning, RedisKind::Single, &[]).await
    }

    /// A lab on the given Redis deployment, the API and workers set with `env` besides the
    /// lab's own settings (later entries win).
    pub async fn start_on(tuning: &WorkerTuning, kind: RedisKind, extra: &[(&str, &str)]) -> Self {
        let extra_env: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let short = uuid::Uuid::now_v7().simple().to_string();
        let dir =
            std::env::temp_dir().join(format!("facecraft-chaos-{}", &short[short.len() - 12..]));
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = format!("chaos-{}", &short[short.len() - 12..]);
        let bucket = "chaos".to_owned();

        let ports = free_ports(5, 2);
        let (weed_ports, redis_port) = (ports[..6].to_vec(), ports[6]);
        let upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mixed = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let (ak, sk) = (token(20, upper), token(40, mixed));

        let (redis, mut topology) = match kind {
            RedisKind::Single => (
                Some(RedisServer::start(redis_port, &dir.join("redis")).await),
                None,
            ),
            RedisKind::Sentinel { down_after_ms } => {
                (None, Some(Topology::sentinel(&dir, down_after_ms).await))
            }
            RedisKind::Cluster => (None, Some(Topology::cluster(&dir).await)),
        };
        let (redis_url, redis_port) = match (&redis, &mut topology) {
            (Some(r), _) => (r.url(), r.port),
            (None, Some(t)) => {
                let port = t.nodes_mut()[0].port;
                ("redis://127.0.0.1:1/".to_owned(), port)
            }
            (None, None) => unreachable!("a lab has some redis"),
        };
        let mode_args = topology.as_ref().map(Topology::args).unwrap_or_default();
        let mode_env = topology.as_ref().map(Topology::env).unwrap_or_default();
        let mut weed = WeedServer::start(&dir, weed_ports, &ak, &sk);
        let endpoint = weed.endpoint();

        let timeout_secs = tuning.s3_timeout_secs.to_string();
        let mut args: Vec<&str> = vec![
            "facecraft-api",
            "--addr",
            "127.0.0.1:0",
            "--redis-url",
            &redis_url,
            "--redis-prefix",
            &prefix,
            "--redis-timeout-ms",
            "1000",
            "--s3-endpoint",
            &endpoint,
            "--s3-region",
            "us-east-1",
            "--s3-bucket",
            &bucket,
            "--s3-timeout-secs",
            &timeout_secs,
        ];
        args.extend(mode_args.iter().map(String::as_str));
        let flags = topology::flags(
            extra
                .iter()
                .copied()
                .filter(|(k, _)| k.starts_with("FACECRAFT_REDIS_")),
        );
        args.extend(flags.iter().map(String::as_str));
        let mut settings = facecraft_api::Settings::try_parse_from(args).unwrap();
        // The S3 settings read the AWS variables of this process (the dev-stack's); use ours.
        settings.s3.access_key_id = Some(ak.clone());
        settings.s3.secret_access_key = Some(sk.clone());
        // Authentication on, as in production (clap also read this process's environment,
        // e.g. the dev-stack's FACECRAFT_AUTH_DISABLED; override it); no rate limit, the
        // checks read every job.
        let api_key = token(32, mixed);
        settings.api_keys = Some(format!("chaos:{api_key}"));
        settings.auth_disabled = false;
        settings.admin_tenants.clear();
        settings.allowed_buckets.clear();
        settings.rate_limit_per_min = 0;
        let queue_settings = QueueSettings {
            lease_timeout_ms: tuning.lease_ms,
            max_deliveries: tuning.max_deliveries,
            ..QueueSettings::default()
        };
        settings.queue = queue_settings.clone();
        let queue = Queue::new(&settings.redis, &queue_settings).unwrap();
        let store = ObjectStore::new(&settings.s3).await.unwrap();
        weed.wait_ready(&store, &bucket).await;

        let app = facecraft_api::Application::build(settings).await.unwrap();
        let api = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));

        let models = models_dir();
        let mut env: Vec<(String, String)> = vec![
            ("FACECRAFT_REDIS_URL", redis_url.clone()),
            ("FACECRAFT_REDIS_PREFIX", prefix.clone()),
            ("FACECRAFT_REDIS_TIMEOUT_MS", "1000".into()),
            ("FACECRAFT_S3_ENDPOINT", endpoint),
            ("FACECRAFT_S3_REGION", "us-east-1".into()),
            ("FACECRAFT_S3_BUCKET", bucket.clone()),
            (
                "FACECRAFT_S3_TIMEOUT_SECS",
                tuning.s3_timeout_secs.to_string(),
            ),
            ("AWS_ACCESS_KEY_ID", ak),
            ("AWS_SECRET_ACCESS_KEY", sk),
            ("FACECRAFT_LEASE_TIMEOUT_MS", tuning.lease_ms.to_string()),
            (
                "FACECRAFT_MAX_DELIVERIES",
                tuning.max_deliveries.to_string(),
            ),
            ("FACECRAFT_MAX_RETRIES", tuning.max_retries.to_string()),
            ("FACECRAFT_RETRY_BASE_MS", "200".into()),
            ("FACECRAFT_RETRY_MAX_MS", "3000".into()),
            ("FACECRAFT_REAP_INTERVAL_MS", "500".into()),
            ("FACECRAFT_READ_BLOCK_MS", "500".into()),
            (
                "FACECRAFT_WORKER_CONCURRENCY",
                tuning.concurrency.to_string(),
            ),
            (
                "FACECRAFT_DRAIN_TIMEOUT_SECS",
                tuning.drain_timeout_secs.to_string(),
            ),
            // Light workers: no CNN detector.
            ("FACECRAFT_DETECTORS", "hog,retinaface".into()),
            ("FACECRAFT_SEGMENTATION_MODELS", "u2netp".into()),
            ("FACECRAFT_MODELS_DIR", models.display().to_string()),
            ("FACECRAFT_LOG_FORMAT", "json".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(ort) = ort_dylib(&models) {
            env.push(("ORT_DYLIB_PATH".into(), ort.display().to_string()));
        }
        let mut env: Vec<(String, String)> =
            env.into_iter().chain(mode_env).chain(extra_env).collect();
        // Later entries win.
        let mut seen = std::collections::HashSet::new();
        env.reverse();
        env.retain(|(k, _)| seen.insert(k.clone()));
        env.reverse();
        let fleet = Arc::new(Mutex::new(Fleet::new(&dir, env)));

        Self {
            dir,
            prefix,
            bucket,
            api,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .default_headers(
                    [(
                        reqwest::header::AUTHORIZATION,
                        format!("Bearer {api_key}").parse().unwrap(),
                    )]
                    .into_iter()
                    .collect(),
                )
                .build()
                .unwrap(),
            queue,
            store,
            fleet,
            redis_port,
            redis: tokio::sync::Mutex::new(redis),
            topology: tokio::sync::Mutex::new(topology),
            weed: tokio::sync::Mutex::new(weed),
            api_stop: Some(tx),
            passed: false,
        }
    }

    /// Waits until every worker of the fleet logged its start; panics if one exited.
    pub async fn wait_workers_started(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = {
                let mut f = self.fleet.lock().unwrap();
                f.poll();
                for w in &f.workers {
                    if let Fate::Exited(st) = &w.fate {
                        panic!(
                            "worker {} exited at start ({st}):\n{}",
                            w.name,
                            w.log_text()
                        );
                    }
                }
                f.workers
                    .iter()
                    .all(|w| w.log_text().contains("worker starting"))
            };
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "workers did not start within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    pub fn obj(&self, key: &str) -> ObjectRef {
        ObjectRef {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) {
        self.store
            .put(&self.obj(key), bytes.into(), "application/octet-stream")
            .await
            .unwrap();
    }

    /// Puts the inputs both fault tests use: `inputs/astronaut.png` (one face) and
    /// `inputs/grey.png` (a uniform grey picture, no face); answers the photo's bytes.
    pub async fn put_photo_and_grey(&self) -> Vec<u8> {
        let png = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/astronaut.png"),
        )
        .expect("testdata/astronaut.png");
        let grey = image::RgbImage::from_pixel(96, 96, image::Rgb([128, 128, 128]));
        let mut grey_png = Vec::new();
        grey.write_to(
            &mut std::io::Cursor::new(&mut grey_png),
            image::ImageFormat::Png,
        )
        .unwrap();
        self.put("inputs/astronaut.png", png.clone()).await;
        self.put("inputs/grey.png", grey_png).await;
        png
    }

    /// Redis command on the lab's server.
    pub async fn redis_cmd(&self, args: &[&str]) -> Result<resp::Reply, String> {
        resp::cmd(self.redis_port, args).await
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(tx) = self.api_stop.take() {
            let _ = tx.send(());
        }
        // Workers first, so none writes to a server that is going away; then the servers.
        match self.fleet.lock() {
            Ok(mut f) => f.kill_all(),
            Err(poisoned) => poisoned.into_inner().kill_all(),
        }
        self.weed.get_mut().kill9();
        if let Some(r) = self.redis.get_mut() {
            r.kill9();
        }
        if let Some(t) = self.topology.get_mut() {
            t.kill_all();
        }
        if self.passed && std::env::var_os("FACECRAFT_CHAOS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("chaos: data and logs kept in {}", self.dir.display());
        }
    }
}
