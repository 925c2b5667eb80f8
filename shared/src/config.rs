//! Settings shared by the api and the worker, read from `FACECRAFT_*` environment variables
//! (or the matching `--flags`). Every field documents its default; `validate` runs at start.

use std::time::Duration;

use clap::Args;

/// Redis connection and key layout.
#[derive(Clone, Args)]
pub struct RedisSettings {
    /// Redis URL, e.g. `redis://127.0.0.1:6379/`.
    #[arg(
        long = "redis-url",
        env = "FACECRAFT_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub url: String,
    /// Prefix of every key Facecraft writes.
    #[arg(
        long = "redis-prefix",
        env = "FACECRAFT_REDIS_PREFIX",
        default_value = "facecraft"
    )]
    pub prefix: String,
    /// Connections for non-blocking commands, each shared by every task (multiplexed). A few
    /// are enough: concurrent commands on one connection travel together.
    #[arg(
        long = "redis-pool-size",
        env = "FACECRAFT_REDIS_POOL_SIZE",
        default_value_t = 4
    )]
    pub pool_size: usize,
    /// How long a command may wait for a connection, and for Redis to answer, in ms.
    #[arg(
        long = "redis-timeout-ms",
        env = "FACECRAFT_REDIS_TIMEOUT_MS",
        default_value_t = 3000
    )]
    pub timeout_ms: u64,
    /// Sentinel mode: the Sentinels' addresses, comma-separated `host:port` (or `redis://`
    /// URLs). The master's address comes from them, and again after a failover; the user,
    /// password, TLS and database of `FACECRAFT_REDIS_URL` apply to it, its host does not.
    #[arg(long = "redis-sentinels", env = "FACECRAFT_REDIS_SENTINELS")]
    pub sentinels: Option<String>,
    /// Sentinel mode: the name the Sentinels monitor the master under.
    #[arg(
        long = "redis-sentinel-master",
        env = "FACECRAFT_REDIS_SENTINEL_MASTER"
    )]
    pub sentinel_master: Option<String>,
    /// Cluster mode: some of the cluster's nodes, comma-separated `redis://host:port`; the rest
    /// is discovered. The user, password and TLS of `FACECRAFT_REDIS_URL` apply where a node's
    /// URL names none.
    #[arg(long = "redis-cluster-nodes", env = "FACECRAFT_REDIS_CLUSTER_NODES")]
    pub cluster_nodes: Option<String>,
    /// Replicas that must have an enqueued job before the API answers (Redis `WAIT`); 0 = the
    /// primary's acknowledgement is enough. Costs one replication round trip per enqueue.
    #[arg(
        long = "redis-wait-replicas",
        env = "FACECRAFT_REDIS_WAIT_REPLICAS",
        default_value_t = 0
    )]
    pub wait_replicas: u32,
    /// How long an enqueue waits for those replicas, in ms. Fewer in time: the API answers 503
    /// `queue_unavailable` (the client submits again, with its idempotency key).
    #[arg(
        long = "redis-wait-timeout-ms",
        env = "FACECRAFT_REDIS_WAIT_TIMEOUT_MS",
        default_value_t = 200
    )]
    pub wait_timeout_ms: u64,
}

impl Default for RedisSettings {
    /// The documented defaults: one node on the local port.
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            prefix: "facecraft".into(),
            pool_size: 4,
            timeout_ms: 3000,
            sentinels: None,
            sentinel_master: None,
            cluster_nodes: None,
            wait_replicas: 0,
            wait_timeout_ms: 200,
        }
    }
}

/// How to reach Redis, from [`RedisSettings::mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    /// `FACECRAFT_REDIS_URL`.
    Single,
    /// Sentinel addresses as URLs, and the master's name.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// Seed nodes as URLs.
    Cluster { nodes: Vec<String> },
}

impl RedisMode {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Sentinel { .. } => "sentinel",
            Self::Cluster { .. } => "cluster",
        }
    }
}

/// A comma-separated list, empty entries dropped; `None` when nothing is left (an empty
/// variable, as compose passes an unset one, means unset).
fn list(v: Option<&str>) -> Option<Vec<String>> {
    let items: Vec<String> = v?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("timeout_ms", &self.timeout_ms)
            .field("mode", &self.mode().map(|m| m.name()).unwrap_or("invalid"))
            .field("sentinels", &self.sentinels.as_deref().map(redact_url_list))
            .field("sentinel_master", &self.sentinel_master)
            .field(
                "cluster_nodes",
                &self.cluster_nodes.as_deref().map(redact_url_list),
            )
            .field("wait_replicas", &self.wait_replicas)
            .field("wait_timeout_ms", &self.wait_timeout_ms)
            .finish()
    }
}

impl RedisSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The connection mode the settings ask for, checked.
    pub fn mode(&self) -> Result<RedisMode, String> {
        let sentinels = list(self.sentinels.as_deref());
        let master = self
            .sentinel_master
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty());
        let nodes = list(self.cluster_nodes.as_deref());
        match (sentinels, master, nodes) {
            (Some(_), _, Some(_)) => Err(
                "FACECRAFT_REDIS_SENTINELS and FACECRAFT_REDIS_CLUSTER_NODES exclude each other"
                    .into(),
            ),
            (Some(_), None, _) => Err(
                "FACECRAFT_REDIS_SENTINELS needs FACECRAFT_REDIS_SENTINEL_MASTER (the name the \
                 Sentinels monitor the master under)"
                    .into(),
            ),
            (None, Some(_), _) => Err(
                "FACECRAFT_REDIS_SENTINEL_MASTER is set without FACECRAFT_REDIS_SENTINELS".into(),
            ),
            (Some(sentinels), Some(master), None) => {
                let sentinels = sentinels
                    .iter()
                    .map(|s| {
                        let url = if s.contains("://") {
                            s.clone()
                        } else {
                            format!("redis://{s}")
                        };
                        check_node_url(&url)
                            .map(|()| url)
                            .map_err(|e| format!("FACECRAFT_REDIS_SENTINELS: `{s}` {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(RedisMode::Sentinel {
                    sentinels,
                    master: master.to_owned(),
                })
            }
            (None, None, Some(nodes)) => {
                for n in &nodes {
                    check_node_url(n).map_err(|e| {
                        format!("FACECRAFT_REDIS_CLUSTER_NODES: `{}` {e}", redact_url(n))
                    })?;
                }
                Ok(RedisMode::Cluster { nodes })
            }
            (None, None, None) => Ok(RedisMode::Single),
        }
    }

    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.mode()?;
        if self.wait_replicas > 16 {
            return Err("FACECRAFT_REDIS_WAIT_REPLICAS must be between 0 and 16".into());
        }
        if self.wait_replicas > 0 && !(1..=60_000).contains(&self.wait_timeout_ms) {
            return Err("FACECRAFT_REDIS_WAIT_TIMEOUT_MS must be between 1 and 60000".into());
        }
        if self.wait_replicas > 0 && self.wait_timeout_ms >= self.timeout_ms {
            return Err(
                "FACECRAFT_REDIS_WAIT_TIMEOUT_MS must be below FACECRAFT_REDIS_TIMEOUT_MS, or the \
                 client gives up on WAIT first"
                    .into(),
            );
        }
        if self.prefix.contains(['{', '}']) {
            return Err(
                "FACECRAFT_REDIS_PREFIX must not contain braces: it becomes the keys' hash tag"
                    .into(),
            );
        }
        if !(self.url.starts_with("redis://") || self.url.starts_with("rediss://")) {
            return Err("FACECRAFT_REDIS_URL must start with redis:// or rediss://".into());
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err("FACECRAFT_REDIS_PREFIX must be non-empty without spaces".into());
        }
        if !(1..=256).contains(&self.pool_size) {
            return Err("FACECRAFT_REDIS_POOL_SIZE must be between 1 and 256".into());
        }
        if self.timeout_ms < 100 {
            return Err("FACECRAFT_REDIS_TIMEOUT_MS must be at least 100".into());
        }
        Ok(())
    }
}

/// S3-compatible object storage.
#[derive(Clone, Args)]
pub struct S3Settings {
    /// Custom endpoint (SeaweedFS, MinIO, ...); unset means AWS itself.
    #[arg(long = "s3-endpoint", env = "FACECRAFT_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Endpoint that presigned URLs name, when clients reach S3 at another address than the
    /// services do (a compose network name, a Kubernetes service, an ingress). Unset: the
    /// endpoint above. The S3 server must see the same `Host` as this URL names.
    #[arg(long = "s3-public-endpoint", env = "FACECRAFT_S3_PUBLIC_ENDPOINT")]
    pub public_endpoint: Option<String>,
    /// Region used for signing.
    #[arg(
        long = "s3-region",
        env = "FACECRAFT_S3_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,
    /// Default bucket for uploads and results.
    #[arg(
        long = "s3-bucket",
        env = "FACECRAFT_S3_BUCKET",
        default_value = "facecraft"
    )]
    pub bucket: String,
    /// Path-style addressing (`endpoint/bucket/key`); needed by most self-hosted servers.
    #[arg(long = "s3-path-style", env = "FACECRAFT_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub path_style: bool,
    /// Time limit of one S3 request attempt, in seconds (the SDK retries up to 3 attempts).
    #[arg(
        long = "s3-timeout-secs",
        env = "FACECRAFT_S3_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub timeout_secs: u64,
    /// Lifetime of presigned URLs, in seconds.
    #[arg(
        long = "presign-expiry-secs",
        env = "FACECRAFT_PRESIGN_EXPIRY_SECS",
        default_value_t = 900
    )]
    pub presign_expiry_secs: u64,
    /// Access key; read from the AWS SDK's own variable.
    #[arg(skip = std::env::var("AWS_ACCESS_KEY_ID").ok())]
    pub access_key_id: Option<String>,
    /// Secret key; read from the AWS SDK's own variable.
    #[arg(skip = std::env::var("AWS_SECRET_ACCESS_KEY").ok())]
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("timeout_secs", &self.timeout_secs)
            .field("presign_expiry_secs", &self.presign_expiry_secs)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3Settings {
    pub fn validate(&self) -> Result<(), String> {
        facecraft_contract::job::validate_bucket(&self.bucket)
            .map_err(|e| format!("FACECRAFT_S3_BUCKET: {e}"))?;
        for (name, value) in [
            ("FACECRAFT_S3_ENDPOINT", &self.endpoint),
            ("FACECRAFT_S3_PUBLIC_ENDPOINT", &self.public_endpoint),
        ] {
            if let Some(ep) = value {
                if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                    return Err(format!("{name} must be an http:// or https:// URL"));
                }
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither".into());
        }
        if !(1..=604_800).contains(&self.presign_expiry_secs) {
            return Err(
                "FACECRAFT_PRESIGN_EXPIRY_SECS must be 1-604800 (S3's limit is 7 days)".into(),
            );
        }
        if self.timeout_secs == 0 {
            return Err("FACECRAFT_S3_TIMEOUT_SECS must be at least 1".into());
        }
        Ok(())
    }
}

/// Delivery, retry and retention policy of the queue.
#[derive(Debug, Clone, Args)]
pub struct QueueSettings {
    /// A job whose processing started this many times without finishing goes to the dead stream.
    #[arg(long, env = "FACECRAFT_MAX_DELIVERIES", default_value_t = 5)]
    pub max_deliveries: u32,
    /// An in-flight entry not renewed for this long is taken over by another worker, in ms.
    #[arg(long, env = "FACECRAFT_LEASE_TIMEOUT_MS", default_value_t = 60_000)]
    pub lease_timeout_ms: u64,
    /// First retry delay after a transient error, in ms; doubles each attempt, with jitter.
    #[arg(long, env = "FACECRAFT_RETRY_BASE_MS", default_value_t = 1_000)]
    pub retry_base_ms: u64,
    /// Longest retry delay, in ms.
    #[arg(long, env = "FACECRAFT_RETRY_MAX_MS", default_value_t = 60_000)]
    pub retry_max_ms: u64,
    /// How long a finished job's status stays readable, in seconds.
    #[arg(long, env = "FACECRAFT_STATUS_TTL_SECS", default_value_t = 86_400)]
    pub status_ttl_secs: u64,
    /// Approximate cap of the stream (`XADD MAXLEN ~`); acked entries are deleted anyway.
    #[arg(long, env = "FACECRAFT_STREAM_MAX_LEN", default_value_t = 1_000_000)]
    pub stream_max_len: u64,
    /// Enqueue is refused with `queue_full` once this many jobs wait; 0 means no limit.
    /// Keep it below FACECRAFT_STREAM_MAX_LEN so trimming never drops a waiting job.
    #[arg(long, env = "FACECRAFT_MAX_BACKLOG", default_value_t = 100_000)]
    pub max_backlog: u64,
    /// A job of the GPU lane (`restore=true`) fails with `no_gpu_worker` once no GPU worker
    /// has been alive for this long and the job has waited this long: long enough for an
    /// autoscaler to start a GPU node. 0 = wait forever.
    #[arg(
        long,
        env = "FACECRAFT_NO_GPU_WORKER_TIMEOUT_SECS",
        default_value_t = 900
    )]
    pub no_gpu_worker_timeout_secs: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_deliveries: 5,
            lease_timeout_ms: 60_000,
            retry_base_ms: 1_000,
            retry_max_ms: 60_000,
            status_ttl_secs: 86_400,
            stream_max_len: 1_000_000,
            max_backlog: 100_000,
            no_gpu_worker_timeout_secs: 900,
        }
    }
}

impl QueueSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_deliveries == 0 {
            return Err("FACECRAFT_MAX_DELIVERIES must be at least 1".into());
        }
        if self.lease_timeout_ms < 500 {
            return Err("FACECRAFT_LEASE_TIMEOUT_MS must be at least 500".into());
        }
        if self.retry_base_ms == 0 || self.retry_max_ms < self.retry_base_ms {
            return Err("FACECRAFT_RETRY_BASE_MS must be ≥ 1 and ≤ FACECRAFT_RETRY_MAX_MS".into());
        }
        if self.status_ttl_secs == 0 {
            return Err("FACECRAFT_STATUS_TTL_SECS must be at least 1".into());
        }
        if self.max_backlog >= self.stream_max_len {
            return Err(
                "FACECRAFT_MAX_BACKLOG must be below FACECRAFT_STREAM_MAX_LEN, or trimming could drop waiting jobs"
                    .into(),
            );
        }
        Ok(())
    }

    /// `None`: GPU-lane jobs wait for a worker however long it takes.
    pub fn no_gpu_worker_timeout(&self) -> Option<Duration> {
        (self.no_gpu_worker_timeout_secs > 0)
            .then(|| Duration::from_secs(self.no_gpu_worker_timeout_secs))
    }

    pub fn lease_timeout(&self) -> Duration {
        Duration::from_millis(self.lease_timeout_ms)
    }

    /// Delay before retry number `attempt` (1-based): exponential with full jitter on the upper half.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        facecraft_contract::retry::backoff(
            Duration::from_millis(self.retry_base_ms),
            Duration::from_millis(self.retry_max_ms),
            attempt,
        )
    }
}

/// Hides the password of a `redis://user:pass@host` URL.
/// [`redact_url`] on each entry of a comma-separated list.
pub fn redact_url_list(urls: &str) -> String {
    urls.split(',')
        .map(|u| redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A node's URL must name a TCP address (no unix sockets: nodes are reached over the network).
fn check_node_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("must be host:port or a redis:// or rediss:// URL".into());
    }
    match redis::IntoConnectionInfo::into_connection_info(url) {
        Ok(info) => match info.addr() {
            redis::ConnectionAddr::Unix(_) => Err("must be a TCP address".into()),
            _ => Ok(()),
        },
        Err(e) => Err(format!("is not a valid address: {e}")),
    }
}

pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(f: impl FnOnce(&mut RedisSettings)) -> RedisSettings {
        let mut s = RedisSettings::default();
        f(&mut s);
        s
    }

    #[test]
    fn redis_modes_are_read_and_checked() {
        assert_eq!(RedisSettings::default().mode(), Ok(RedisMode::Single));
        // Empty values (compose passes unset variables so) mean unset.
        let empty = redis(|s| {
            s.sentinels = Some(" ".into());
            s.sentinel_master = Some(String::new());
            s.cluster_nodes = Some(",".into());
        });
        assert_eq!(empty.mode(), Ok(RedisMode::Single));
        let sentinel = redis(|s| {
            s.sentinels = Some("10.0.0.1:26379, redis://:pw@10.0.0.2:26379".into());
            s.sentinel_master = Some("mymaster".into());
        });
        assert_eq!(
            sentinel.mode(),
            Ok(RedisMode::Sentinel {
                sentinels: vec![
                    "redis://10.0.0.1:26379".into(),
                    "redis://:pw@10.0.0.2:26379".into()
                ],
                master: "mymaster".into()
            })
        );
        assert!(!format!("{sentinel:?}").contains("pw"), "{sentinel:?}");
        let cluster = redis(|s| s.cluster_nodes = Some("redis://a:7000,redis://b:7001".into()));
        assert_eq!(
            cluster.mode(),
            Ok(RedisMode::Cluster {
                nodes: vec!["redis://a:7000".into(), "redis://b:7001".into()]
            })
        );
        for (bad, says) in [
            (
                redis(|s| s.sentinels = Some("a:1".into())),
                "FACECRAFT_REDIS_SENTINEL_MASTER",
            ),
            (
                redis(|s| s.sentinel_master = Some("m".into())),
                "without FACECRAFT_REDIS_SENTINELS",
            ),
            (
                redis(|s| {
                    s.sentinels = Some("a:1".into());
                    s.sentinel_master = Some("m".into());
                    s.cluster_nodes = Some("redis://b:2".into());
                }),
                "exclude each other",
            ),
            (
                redis(|s| s.cluster_nodes = Some("b:2".into())),
                "FACECRAFT_REDIS_CLUSTER_NODES",
            ),
            (
                redis(|s| s.cluster_nodes = Some("redis:///tmp/redis.sock".into())),
                "FACECRAFT_REDIS_CLUSTER_NODES",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn wait_settings_and_the_prefix_are_checked() {
        assert!(redis(|s| s.wait_replicas = 1).validate().is_ok());
        let e = redis(|s| {
            s.wait_replicas = 1;
            s.wait_timeout_ms = 5_000;
        })
        .validate()
        .unwrap_err();
        assert!(e.contains("below FACECRAFT_REDIS_TIMEOUT_MS"), "{e}");
        assert!(redis(|s| s.wait_replicas = 17).validate().is_err());
        let e = redis(|s| s.prefix = "{x}".into()).validate().unwrap_err();
        assert!(e.contains("braces"), "{e}");
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let q = QueueSettings {
            retry_base_ms: 100,
            retry_max_ms: 1_000,
            ..QueueSettings::default()
        };
        for _ in 0..50 {
            let d1 = q.retry_delay(1).as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = q.retry_delay(3).as_millis();
            assert!((200..=400).contains(&d3), "{d3}");
            let d30 = q.retry_delay(30).as_millis();
            assert!((500..=1_000).contains(&d30), "{d30}");
        }
    }

    #[test]
    fn backlog_must_stay_below_the_trim_length() {
        let q = QueueSettings {
            max_backlog: 10,
            stream_max_len: 10,
            ..QueueSettings::default()
        };
        assert!(q.validate().unwrap_err().contains("MAX_BACKLOG"));
        QueueSettings::default().validate().unwrap();
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://u:secret@host:6379/0"),
            "redis://<redacted>@host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379/"), "redis://host:6379/");
    }
}
