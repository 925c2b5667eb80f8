//! API settings from `FACECRAFT_*` environment variables (or flags); validated at start.

use clap::Parser;
use facecraft_shared::config::{QueueSettings, RedisSettings, S3Settings};

/// Facecraft HTTP API.
#[derive(Clone, Parser)]
#[command(name = "facecraft-api", version, about)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "FACECRAFT_API_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Largest accepted upload (and JSON body), in bytes.
    #[arg(long, env = "FACECRAFT_MAX_UPLOAD_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_upload_bytes: usize,
    /// Time limit of one request, in seconds.
    #[arg(long, env = "FACECRAFT_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "FACECRAFT_SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,
    /// API keys as comma-separated `tenant:key` pairs. Unset: no authentication, every request
    /// acts as tenant `default` (a warning is logged at start).
    #[arg(long, env = "FACECRAFT_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// Run without authentication (every request is tenant `default`). Required when
    /// FACECRAFT_API_KEYS is unset, so an open API is always a deliberate choice.
    #[arg(long, env = "FACECRAFT_AUTH_DISABLED", default_value_t = false, action = clap::ArgAction::Set)]
    pub auth_disabled: bool,
    /// Tenants (from FACECRAFT_API_KEYS) that may list dead jobs and re-queue any tenant's job.
    #[arg(long, env = "FACECRAFT_ADMIN_TENANTS", value_delimiter = ',')]
    pub admin_tenants: Vec<String>,
    /// Requests per minute per API key (tenant); 0 turns the limit off.
    #[arg(long, env = "FACECRAFT_RATE_LIMIT_PER_MIN", default_value_t = 600)]
    pub rate_limit_per_min: u32,
    /// Requests a key may make at once before the per-minute rate applies.
    #[arg(long, env = "FACECRAFT_RATE_LIMIT_BURST", default_value_t = 60)]
    pub rate_limit_burst: u32,
    /// Buckets jobs may read input from, comma-separated, besides FACECRAFT_S3_BUCKET.
    #[arg(long, env = "FACECRAFT_ALLOWED_BUCKETS", value_delimiter = ',')]
    pub allowed_buckets: Vec<String>,
    /// Live event streams (`GET /v1/jobs/{id}/events`) open at once; each holds a Redis
    /// connection. Over it, new streams get `503 too_many_streams`.
    #[arg(long, env = "FACECRAFT_SSE_MAX_STREAMS", default_value_t = 512)]
    pub sse_max_streams: usize,
    /// Longest life of one event stream, in seconds; clients reconnect after it.
    #[arg(long, env = "FACECRAFT_SSE_MAX_SECS", default_value_t = 3600)]
    pub sse_max_secs: u64,
    /// Interval of keep-alive comments on an idle event stream, in seconds.
    #[arg(long, env = "FACECRAFT_SSE_KEEPALIVE_SECS", default_value_t = 15)]
    pub sse_keepalive_secs: u64,
    /// How often an event stream re-reads the status while Redis pub/sub is lost, in ms (with
    /// pub/sub, every ten times as long, to catch changes that publish nothing).
    #[arg(long, env = "FACECRAFT_SSE_POLL_MS", default_value_t = 1000)]
    pub sse_poll_ms: u64,
    /// How long the Python-compatible endpoints (`/api/v1/process*`) wait for a job to end
    /// before answering 504 with its id, in seconds; less than FACECRAFT_REQUEST_TIMEOUT_SECS.
    #[arg(long, env = "FACECRAFT_COMPAT_WAIT_SECS", default_value_t = 25)]
    pub compat_wait_secs: u64,
    /// Most inputs in one batch (`/v1/batches`, `/api/v1/process/batch`).
    #[arg(long, env = "FACECRAFT_MAX_BATCH_SIZE", default_value_t = 50)]
    pub max_batch_size: usize,
    /// Largest batch upload body, and largest zip of a batch's results, in bytes.
    #[arg(long, env = "FACECRAFT_MAX_BATCH_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_batch_bytes: usize,
    /// Browser origins allowed to call the API from another site (CORS), comma-separated, e.g.
    /// `https://hr.example.com`; `*` allows any. Empty (the default): no CORS headers, so
    /// browsers allow only same-origin calls.
    #[arg(long, env = "FACECRAFT_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub s3: S3Settings,
    #[command(flatten)]
    pub queue: QueueSettings,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("shutdown_timeout_secs", &self.shutdown_timeout_secs)
            .field("api_keys", &self.api_keys.as_ref().map(|_| "<redacted>"))
            .field("auth_disabled", &self.auth_disabled)
            .field("admin_tenants", &self.admin_tenants)
            .field("rate_limit_per_min", &self.rate_limit_per_min)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("allowed_buckets", &self.allowed_buckets)
            .field("sse_max_streams", &self.sse_max_streams)
            .field("sse_max_secs", &self.sse_max_secs)
            .field("sse_keepalive_secs", &self.sse_keepalive_secs)
            .field("sse_poll_ms", &self.sse_poll_ms)
            .field("compat_wait_secs", &self.compat_wait_secs)
            .field("max_batch_size", &self.max_batch_size)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("cors_origins", &self.cors_origins)
            .field("redis", &self.redis)
            .field("s3", &self.s3)
            .field("queue", &self.queue)
            .finish()
    }
}

/// One configured API key.
#[derive(Clone)]
pub struct ApiKey {
    pub tenant: String,
    pub key: String,
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        self.redis.validate()?;
        self.s3.validate()?;
        self.queue.validate()?;
        self.addr
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("FACECRAFT_API_ADDR `{}`: {e}", self.addr))?;
        if self.max_upload_bytes < 1024 {
            return Err("FACECRAFT_MAX_UPLOAD_BYTES must be at least 1024".into());
        }
        if self.request_timeout_secs == 0 {
            return Err("FACECRAFT_REQUEST_TIMEOUT_SECS must be at least 1".into());
        }
        if self.sse_max_streams == 0 {
            return Err("FACECRAFT_SSE_MAX_STREAMS must be at least 1".into());
        }
        if self.sse_max_secs == 0 || self.sse_keepalive_secs == 0 {
            return Err(
                "FACECRAFT_SSE_MAX_SECS and FACECRAFT_SSE_KEEPALIVE_SECS must be at least 1".into(),
            );
        }
        if self.sse_poll_ms < 100 {
            return Err("FACECRAFT_SSE_POLL_MS must be at least 100".into());
        }
        for origin in &self.cors_origins {
            valid_origin(origin).map_err(|e| format!("FACECRAFT_CORS_ORIGINS `{origin}`: {e}"))?;
        }
        if self.cors_origins.len() > 1 && self.cors_origins.iter().any(|o| o.trim() == "*") {
            return Err(
                "FACECRAFT_CORS_ORIGINS: `*` allows every origin; list no others with it".into(),
            );
        }
        if self.compat_wait_secs == 0 || self.compat_wait_secs >= self.request_timeout_secs {
            return Err(format!(
                "FACECRAFT_COMPAT_WAIT_SECS must be 1 to FACECRAFT_REQUEST_TIMEOUT_SECS - 1 ({}), got {}",
                self.request_timeout_secs.saturating_sub(1),
                self.compat_wait_secs
            ));
        }
        if !(1..=1000).contains(&self.max_batch_size) {
            return Err("FACECRAFT_MAX_BATCH_SIZE must be 1-1000".into());
        }
        if self.max_batch_bytes < self.max_upload_bytes {
            return Err(
                "FACECRAFT_MAX_BATCH_BYTES must be at least FACECRAFT_MAX_UPLOAD_BYTES".into(),
            );
        }
        for b in &self.allowed_buckets {
            facecraft_contract::job::validate_bucket(b)
                .map_err(|e| format!("FACECRAFT_ALLOWED_BUCKETS: {e}"))?;
        }
        let keys = self.keys()?;
        match (keys.is_empty(), self.auth_disabled) {
            (true, false) => {
                return Err(
                    "set FACECRAFT_API_KEYS (tenant:key,...), or FACECRAFT_AUTH_DISABLED=true to run without authentication"
                        .into(),
                )
            }
            (false, true) => {
                return Err("FACECRAFT_AUTH_DISABLED=true and FACECRAFT_API_KEYS are both set; choose one".into())
            }
            _ => {}
        }
        for t in &self.admin_tenants {
            if !keys.iter().any(|k| &k.tenant == t) {
                return Err(format!(
                    "FACECRAFT_ADMIN_TENANTS names `{t}`, which has no key in FACECRAFT_API_KEYS"
                ));
            }
        }
        Ok(())
    }

    /// Parses `FACECRAFT_API_KEYS`.
    pub fn keys(&self) -> Result<Vec<ApiKey>, String> {
        let Some(raw) = self.api_keys.as_deref() else {
            return Ok(Vec::new());
        };
        let mut keys = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tenant, key) = pair
                .split_once(':')
                .ok_or("FACECRAFT_API_KEYS entries must be tenant:key")?;
            let tenant_ok = !tenant.is_empty()
                && tenant.len() <= 64
                && tenant
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !tenant_ok {
                return Err(format!(
                    "FACECRAFT_API_KEYS: tenant `{tenant}` must be 1-64 of [A-Za-z0-9_-]"
                ));
            }
            if key.len() < 16 {
                return Err(format!("FACECRAFT_API_KEYS: the key of tenant `{tenant}` is shorter than 16 characters"));
            }
            keys.push(ApiKey {
                tenant: tenant.to_owned(),
                key: key.to_owned(),
            });
        }
        if keys.is_empty() {
            return Err("FACECRAFT_API_KEYS is set but holds no tenant:key pair".into());
        }
        Ok(keys)
    }
}

/// An origin as browsers send it: scheme, host and optional port, nothing else; or `*`.
pub(crate) fn valid_origin(origin: &str) -> Result<(), &'static str> {
    let origin = origin.trim();
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Err("must be scheme://host[:port] with no path, e.g. https://hr.example.com");
    }
    Ok(())
}
