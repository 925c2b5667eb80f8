//! The job queue on Redis Streams (DESIGN §4).
//!
//! Delivery is at-least-once: a worker that dies leaves its entry pending, and another worker's
//! reaper claims it once its lease runs out. Every state change of a job is one Lua script, so
//! the status record and the stream never disagree, and a terminal state is written only once.
//!
//! The Lua of every script lives in `scripts/`, one file each; the methods that run them are
//! split by role: `submit` (what the API does to a job), `lease` (what a worker does with a
//! delivery) and `inspect` (read-only views for the API, metrics and operators).

mod announce;
mod coalesce;
mod conn;
mod inspect;
mod lanes;
mod lease;
mod migrate;
mod rate;
mod submit;

use redis::{AsyncCommands, Script};
use serde::Serialize;

use crate::config::{QueueSettings, RedisSettings};
use facecraft_contract::error::ErrorCode;
use facecraft_contract::job::{JobId, Lane};

pub use announce::{DeviceInfo, ModelInfo, WorkerAnnouncement};
pub use inspect::{DeadJob, FinishedStats, QueueStats, WorkerInfo};
pub use lease::{Consumer, Delivery, Start};
pub use migrate::Migration;
pub use rate::{RateDecision, RateLimit};
pub use submit::{CancelOutcome, Enqueued, ForgetOutcome, RequeueOutcome};

/// Consumer group every worker joins.
pub const GROUP: &str = "workers";

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("redis is unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    #[error("no redis connection available: {0}")]
    Pool(String),
    #[error("the queue already holds {0} waiting jobs")]
    Full(u64),
    #[error("job record {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("redis answered unexpectedly: {0}")]
    Protocol(String),
    #[error("redis settings: {0}")]
    Config(String),
    /// `FACECRAFT_REDIS_WAIT_REPLICAS` replicas did not confirm a write in time. The write may
    /// survive (the primary has it) or not (a failover in progress): the client retries, with
    /// its idempotency key if it sent one.
    #[error("only {got} of {want} replicas confirmed the write in time")]
    NotReplicated { want: u32, got: u32 },
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable(_) | Self::Pool(_) | Self::NotReplicated { .. } => {
                ErrorCode::QueueUnavailable
            }
            Self::Full(_) => ErrorCode::QueueFull,
            Self::Corrupt { .. } | Self::Protocol(_) | Self::Config(_) => ErrorCode::Internal,
        }
    }
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        Self::Unavailable(e)
    }
}

/// Key names under one prefix.
///
/// Every key carries the prefix as a Redis Cluster hash tag (`{facecraft}:jobs`,
/// `{facecraft}:job:<id>`, ...), so all keys of one queue live in one cluster slot: each Lua
/// script touches the stream and a job's keys together, which cluster mode allows only within
/// one slot. The layout is written down in docs/redis.md; `facecraft-worker migrate-keys`
/// renames the keys of the untagged layout of earlier versions.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `{prefix}`.
    tag: String,
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            tag: format!("{{{prefix}}}"),
            prefix: prefix.to_owned(),
        }
    }
    /// The hash tag every key starts with, `{prefix}`.
    pub fn tag(&self) -> &str {
        &self.tag
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The CPU lane's stream, `{prefix}:jobs` (every job without a GPU-only stage).
    pub fn stream(&self) -> String {
        self.stream_for(Lane::Cpu)
    }
    /// A lane's stream: `{prefix}:jobs` for the CPU lane, `{prefix}:jobs:gpu` for the GPU lane.
    pub fn stream_for(&self, lane: Lane) -> String {
        match lane {
            Lane::Cpu => format!("{}:jobs", self.tag),
            Lane::Gpu => format!("{}:jobs:gpu", self.tag),
        }
    }
    pub fn job(&self, id: &JobId) -> String {
        format!("{}:job:{id}", self.tag)
    }
    pub fn idem(&self, tenant: &str, key: &str) -> String {
        format!("{}:idem:{tenant}:{key}", self.tag)
    }
    /// Stands in for the idempotency key of an enqueue without one: a script's keys must all
    /// be in one slot, and an empty name is in slot 0. Never written.
    pub fn no_idem(&self) -> String {
        format!("{}:idem:-", self.tag)
    }
    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }
    /// The CPU lane's retries waiting for their backoff.
    pub fn delayed(&self) -> String {
        self.delayed_for(Lane::Cpu)
    }
    /// A lane's retries waiting for their backoff (sorted set, score = due time).
    pub fn delayed_for(&self, lane: Lane) -> String {
        match lane {
            Lane::Cpu => format!("{}:delayed", self.tag),
            Lane::Gpu => format!("{}:delayed:gpu", self.tag),
        }
    }
    /// Until when (ms) a lane has a live worker: each worker of the lane pushes it forward
    /// when it announces itself. Read to fail jobs that no worker could take
    /// (`no_gpu_worker`).
    pub fn lane_alive(&self, lane: Lane) -> String {
        format!("{}:lane:{lane}:alive_until", self.tag)
    }
    pub fn events(&self, id: &JobId) -> String {
        format!("{}:events:{id}", self.tag)
    }
    /// Counters of finished jobs (hash), kept by the finishing script.
    pub fn finished(&self) -> String {
        format!("{}:stats:finished", self.tag)
    }
    pub fn batch(&self, id: &JobId) -> String {
        format!("{}:batch:{id}", self.tag)
    }
    /// A worker's announcement (device, models), expiring unless refreshed.
    pub fn worker(&self, name: &str) -> String {
        format!("{}:worker:{name}", self.tag)
    }
    /// Names of announced workers, scored by when their announcement expires.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.tag)
    }
    /// A tenant's rate-limit state (GCRA's theoretical arrival time), shared by API replicas.
    pub fn rate(&self, tenant: &str) -> String {
        format!("{}:rate:{tenant}", self.tag)
    }
}

/// Reads after an enqueue timed out, each up to the response timeout, before the enqueue is
/// reported failed.
const SETTLE_READS: usize = 4;

/// Functions prepended to the scripts that use them.
const LUA_HELPERS: &str = include_str!("scripts/helpers.lua");

struct Scripts {
    enqueue: Script,
    enqueue_batch: Script,
    forget: Script,
    start: Script,
    progress: Script,
    finish: Script,
    retry: Script,
    dead: Script,
    cancel: Script,
    requeue: Script,
    promote: Script,
    rate_limit: Script,
    unserved: Script,
}

impl Scripts {
    fn new() -> Self {
        let with_helpers = |body: &str| Script::new(&format!("{LUA_HELPERS}\n{body}"));
        Self {
            enqueue: Script::new(include_str!("scripts/enqueue.lua")),
            enqueue_batch: Script::new(include_str!("scripts/enqueue_batch.lua")),
            forget: with_helpers(include_str!("scripts/forget.lua")),
            start: with_helpers(include_str!("scripts/start.lua")),
            progress: Script::new(include_str!("scripts/progress.lua")),
            finish: with_helpers(include_str!("scripts/finish.lua")),
            retry: with_helpers(include_str!("scripts/retry.lua")),
            dead: with_helpers(include_str!("scripts/dead.lua")),
            cancel: with_helpers(include_str!("scripts/cancel.lua")),
            requeue: Script::new(include_str!("scripts/requeue.lua")),
            promote: Script::new(include_str!("scripts/promote.lua")),
            rate_limit: Script::new(include_str!("scripts/rate_limit.lua")),
            unserved: with_helpers(include_str!("scripts/unserved.lua")),
        }
    }
}

#[derive(Serialize)]
struct Event<'a> {
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<u8>,
}

fn event(state: &str, stage: Option<&str>, percent: Option<u8>) -> String {
    serde_json::to_string(&Event {
        state,
        stage,
        percent,
    })
    .unwrap_or_default()
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    conns: conn::Connections,
    keys: Keys,
    settings: QueueSettings,
    redis: RedisSettings,
    scripts: std::sync::Arc<Scripts>,
    /// The lane this handle consumes (a worker's); enqueues go to each job's own lane.
    lane: Lane,
    /// Jobs this process created (not idempotent repeats), for metrics.
    enqueued: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Enqueues answered with fewer replicas than asked for.
    unreplicated: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Starts and finishes on their way to Redis, and those gathering for the next call.
    batches: std::sync::Arc<Batches>,
}

struct Batches {
    start: std::sync::Arc<coalesce::Coalescer<lease::StartReq, lease::Start>>,
    finish: std::sync::Arc<coalesce::Coalescer<lease::FinishReq, bool>>,
}

impl Queue {
    /// Sets up the shared connections; connects lazily, so Redis may come up later.
    pub fn new(redis: &RedisSettings, settings: &QueueSettings) -> Result<Self, QueueError> {
        Ok(Self {
            conns: conn::Connections::new(redis)?,
            keys: Keys::new(&redis.prefix),
            settings: settings.clone(),
            redis: redis.clone(),
            scripts: std::sync::Arc::new(Scripts::new()),
            lane: Lane::Cpu,
            enqueued: Default::default(),
            unreplicated: Default::default(),
            batches: std::sync::Arc::new(Batches {
                start: std::sync::Arc::new(coalesce::Coalescer::new()),
                finish: std::sync::Arc::new(coalesce::Coalescer::new()),
            }),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// This handle, consuming `lane`: a worker's reads, leases, retries and promotions then
    /// use that lane's stream and delayed set.
    pub fn for_lane(mut self, lane: Lane) -> Self {
        self.lane = lane;
        self
    }

    /// The lane this handle consumes.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The consumed lane's stream.
    pub(crate) fn stream(&self) -> String {
        self.keys.stream_for(self.lane)
    }

    /// The consumed lane's delayed set.
    pub(crate) fn delayed(&self) -> String {
        self.keys.delayed_for(self.lane)
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    async fn conn(&self) -> Result<conn::Conn, QueueError> {
        self.conns.get().await
    }

    /// Decides an enqueue whose answer did not come in time. Redis may have run the script and
    /// the answer be late or lost (a stalled server, a slow network): a client told "503" would
    /// then submit again and get a second job. Redis runs one connection's commands in order, so
    /// a read of `key` (what the script writes) sent after it on the same connection tells what
    /// happened. `Ok` means the script ran; any other failure gives back `error`.
    async fn settle(
        &self,
        c: &mut conn::Conn,
        error: redis::RedisError,
        key: &str,
    ) -> Result<(), QueueError> {
        if !error.is_timeout() {
            return Err(error.into());
        }
        // Each read waits up to the response timeout; a few cover a stall of several.
        for _ in 0..SETTLE_READS {
            match c.exists::<_, bool>(key).await {
                Ok(true) => {
                    tracing::warn!(key, "enqueue answer timed out, but the script ran");
                    return Ok(());
                }
                Ok(false) => break,
                Err(e) if e.is_timeout() => continue,
                Err(_) => break,
            }
        }
        Err(error.into())
    }

    /// With `FACECRAFT_REDIS_WAIT_REPLICAS` set, waits until that many replicas have the writes
    /// made on `c` (Redis `WAIT`), at most the configured time, and fails the enqueue when they
    /// do not: a write only the primary has is lost if it fails over now, and a primary that a
    /// planned failover is about to demote has no replicas left at all (measured by
    /// `tests/failover.rs`: 45 accepted jobs lost in one switchover while shortfalls were
    /// accepted). The connection is dropped too, so the next command asks Sentinel afresh.
    async fn replicate(&self, c: &mut conn::Conn) -> Result<(), QueueError> {
        let want = self.redis.wait_replicas;
        if want == 0 {
            return Ok(());
        }
        let answer = c
            .wait_replicas(&self.keys.stream(), want, self.redis.wait_timeout())
            .await;
        let got = match answer {
            Ok(got) if got >= want => return Ok(()),
            Ok(got) => got,
            Err(e) => {
                tracing::warn!(error = %e, "WAIT for replicas failed");
                0
            }
        };
        self.unreplicated
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        c.discard().await;
        tracing::warn!(
            want,
            got,
            timeout_ms = self.redis.wait_timeout_ms,
            "enqueue refused: too few replicas confirmed it"
        );
        Err(QueueError::NotReplicated { want, got })
    }

    /// PING, for readiness checks.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut c = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// Creates the consumer group (and the stream) if missing. Reads from the start of the
    /// stream so jobs enqueued before the first worker are not skipped.
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut c = self.conn().await?;
        let res: redis::RedisResult<()> = c.xgroup_create_mkstream(self.stream(), GROUP, "0").await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Subscribes to the job's events channel on a connection of its own. Every message on it
    /// means the status record changed; the record itself stays the source of truth. Once this
    /// returns, no later change is missed (the subscription is confirmed by Redis).
    pub async fn subscribe(&self, id: &JobId) -> Result<JobEvents, QueueError> {
        let timeout = self.redis.timeout();
        let subscribe = async {
            let mut pubsub = self.conns.pubsub().await?;
            pubsub.subscribe(self.keys.events(id)).await?;
            Ok::<_, QueueError>(pubsub)
        };
        let pubsub = tokio::time::timeout(timeout, subscribe)
            .await
            .map_err(|_| {
                QueueError::Protocol(format!("SUBSCRIBE gave no answer within {timeout:?}"))
            })??;
        Ok(JobEvents {
            stream: pubsub.into_on_message(),
        })
    }
}

/// Change notices of one job, from [`Queue::subscribe`]. Dropping it closes the connection.
pub struct JobEvents {
    stream: redis::aio::PubSubStream,
}

impl JobEvents {
    /// Waits for the next notice; `None` once the connection is gone (Redis restarted, network
    /// cut): the caller then has to read the status by other means.
    pub async fn next(&mut self) -> Option<()> {
        use futures::StreamExt;
        self.stream.next().await.map(|_| ())
    }
}
