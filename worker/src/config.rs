//! Worker settings from `FACECRAFT_*` environment variables (or flags); validated at start.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use facecraft_shared::config::{QueueSettings, RedisSettings, S3Settings};

/// Where a worker serves `/metrics` unless told otherwise: loopback only, like the API's own
/// default; the images set `0.0.0.0:9091` so that Prometheus and probes reach it.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9091";

/// Limits on what a job may feed the pipeline.
#[derive(Debug, Clone, Args)]
pub struct LimitSettings {
    /// Largest input object, in bytes.
    #[arg(long, env = "FACECRAFT_MAX_INPUT_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_input_bytes: u64,
    /// Largest decoded image, in pixels (decompression-bomb guard).
    #[arg(long, env = "FACECRAFT_MAX_PIXELS", default_value_t = 40_000_000)]
    pub max_pixels: u64,
    /// Longest side of an input image, in pixels.
    #[arg(long, env = "FACECRAFT_MAX_DIMENSION", default_value_t = 12_000)]
    pub max_dimension: u32,
}

impl LimitSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_input_bytes < 1024 {
            return Err("FACECRAFT_MAX_INPUT_BYTES must be at least 1024".into());
        }
        if self.max_pixels < 10_000 {
            return Err("FACECRAFT_MAX_PIXELS must be at least 10000".into());
        }
        if self.max_dimension < 100 {
            return Err("FACECRAFT_MAX_DIMENSION must be at least 100".into());
        }
        Ok(())
    }

    pub fn decode_params(&self) -> facecraft_pipeline::decode::DecodeParams {
        facecraft_pipeline::decode::DecodeParams {
            max_bytes: usize::try_from(self.max_input_bytes).unwrap_or(usize::MAX),
            max_pixels: self.max_pixels,
            max_dimension: self.max_dimension,
            ..Default::default()
        }
    }
}

/// Settings of `facecraft-worker serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Jobs processed at once; default: the number of CPUs.
    #[arg(long, env = "FACECRAFT_WORKER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Consumer name in the group; default: host name, process id and a random suffix.
    #[arg(long, env = "FACECRAFT_WORKER_NAME")]
    pub name: Option<String>,
    /// How long one read waits for new jobs, in ms; also bounds how fast SIGTERM is noticed.
    #[arg(long, env = "FACECRAFT_READ_BLOCK_MS", default_value_t = 2_000)]
    pub read_block_ms: u64,
    /// How often to look for jobs whose worker died and for due retries, in ms.
    #[arg(long, env = "FACECRAFT_REAP_INTERVAL_MS", default_value_t = 5_000)]
    pub reap_interval_ms: u64,
    /// After SIGTERM, how long in-flight jobs may run before the worker exits anyway, in seconds.
    /// Unfinished jobs are then taken over by other workers.
    #[arg(long, env = "FACECRAFT_DRAIN_TIMEOUT_SECS", default_value_t = 60)]
    pub drain_timeout_secs: u64,
    /// Transient failures (S3 or Redis down) retried per job before it goes to the dead stream.
    #[arg(long, env = "FACECRAFT_MAX_RETRIES", default_value_t = 10)]
    pub max_retries: u32,
    /// Where `/metrics` (Prometheus) and `/healthz` listen; `off` disables them, port 0 picks
    /// a free port. Unset: `127.0.0.1:9091` if that port is free (a warning otherwise); an
    /// address given explicitly must bind or the worker does not start.
    #[arg(long, env = "FACECRAFT_WORKER_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub engines: facecraft_pipeline::engines::EngineSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub s3: S3Settings,
    #[command(flatten)]
    pub queue: QueueSettings,
}

impl ServeSettings {
    pub fn validate(&self) -> Result<(), String> {
        self.redis.validate()?;
        self.s3.validate()?;
        self.queue.validate()?;
        self.limits.validate()?;
        self.engines.validate()?;
        if self.concurrency == Some(0) {
            return Err("FACECRAFT_WORKER_CONCURRENCY must be at least 1".into());
        }
        if !(100..=30_000).contains(&self.read_block_ms) {
            return Err("FACECRAFT_READ_BLOCK_MS must be 100-30000".into());
        }
        if self.reap_interval_ms < 100 {
            return Err("FACECRAFT_REAP_INTERVAL_MS must be at least 100".into());
        }
        self.metrics_listener()?;
        if self.read_block_ms >= self.queue.lease_timeout_ms {
            return Err("FACECRAFT_READ_BLOCK_MS must be below FACECRAFT_LEASE_TIMEOUT_MS".into());
        }
        Ok(())
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn consumer_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "worker".to_owned());
            format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
        })
    }

    /// The metrics listener to start, if any, and whether it was asked for explicitly.
    pub fn metrics_listener(&self) -> Result<Option<(SocketAddr, bool)>, String> {
        match self.metrics_addr.as_deref().map(str::trim) {
            None => Ok(Some((
                DEFAULT_METRICS_ADDR.parse().map_err(|e| format!("{e}"))?,
                false,
            ))),
            Some("" | "off") => Ok(None),
            Some(addr) => addr.parse().map(|a| Some((a, true))).map_err(|e| {
                format!("FACECRAFT_WORKER_METRICS_ADDR `{addr}`: {e} (an IP:port, or `off`)")
            }),
        }
    }

    pub fn read_block(&self) -> Duration {
        Duration::from_millis(self.read_block_ms)
    }

    pub fn reap_interval(&self) -> Duration {
        Duration::from_millis(self.reap_interval_ms)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}
