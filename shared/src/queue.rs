//! The job queue on Redis Streams (DESIGN §4).
//!
//! Delivery is at-least-once: a worker that dies leaves its entry pending, and another worker's
//! reaper claims it once its lease runs out. Every state change of a job is one Lua script, so
//! the status record and the stream never disagree, and a terminal state is written only once.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_redis::{Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Script, Value};
use serde::Serialize;

use crate::config::{QueueSettings, RedisSettings};
use crate::error::{ErrorCode, JobError};
use crate::job::{now_ms, rfc3339_ms, Job, JobId, JobResult, JobState, JobStatus, Progress};

/// Consumer group every worker joins.
pub const GROUP: &str = "workers";

#[derive(Debug, thiserror::Error)]
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
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable(_) | Self::Pool(_) => ErrorCode::QueueUnavailable,
            Self::Full(_) => ErrorCode::QueueFull,
            Self::Corrupt { .. } | Self::Protocol(_) => ErrorCode::Internal,
        }
    }
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        Self::Unavailable(e)
    }
}

impl From<deadpool_redis::PoolError> for QueueError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => Self::Unavailable(e),
            other => Self::Pool(other.to_string()),
        }
    }
}

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }
    pub fn stream(&self) -> String {
        format!("{}:jobs", self.prefix)
    }
    pub fn job(&self, id: &JobId) -> String {
        format!("{}:job:{id}", self.prefix)
    }
    pub fn idem(&self, tenant: &str, key: &str) -> String {
        format!("{}:idem:{tenant}:{key}", self.prefix)
    }
    pub fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.prefix)
    }
    pub fn events(&self, id: &JobId) -> String {
        format!("{}:events:{id}", self.prefix)
    }
    /// Counters of finished jobs (hash), kept by the finishing script.
    pub fn finished(&self) -> String {
        format!("{}:stats:finished", self.prefix)
    }
    pub fn batch(&self, id: &JobId) -> String {
        format!("{}:batch:{id}", self.prefix)
    }
}

/// Reads after an enqueue timed out, each up to the response timeout, before the enqueue is
/// reported failed.
const SETTLE_READS: usize = 4;

const LUA_HELPERS: &str = r"
local function terminal(s)
  return s == 'succeeded' or s == 'failed' or s == 'cancelled' or s == 'dead'
end
local function ackdel(stream, entry)
  if entry ~= '' then
    redis.call('XACK', stream, 'workers', entry)
    redis.call('XDEL', stream, entry)
  end
end
";

// KEYS: stream, job hash, idempotency key ('' for none)
// ARGV: id, job json, tenant, now, idem ttl, stream maxlen, max backlog
const ENQUEUE: &str = r"
if KEYS[3] ~= '' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {'existing', existing} end
end
local backlog = tonumber(ARGV[7])
if backlog > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len >= backlog then return {'full', tostring(len)} end
end
redis.call('HSET', KEYS[2], 'state', 'queued', 'job', ARGV[2], 'tenant', ARGV[3],
  'attempts', 0, 'created_at', ARGV[4], 'updated_at', ARGV[4])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*', 'id', ARGV[1])
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[5]) end
return {'created', ARGV[1]}
";

// A batch: every job and the batch record in one step, or nothing (backlog full).
// KEYS: stream, batch key, job hash per job
// ARGV: batch json, tenant, now, ttl, stream maxlen, max backlog, then id and job json per job
const ENQUEUE_BATCH: &str = r"
local n = #KEYS - 2
local backlog = tonumber(ARGV[6])
if backlog > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len + n > backlog then return {'full', tostring(len)} end
end
for i = 1, n do
  redis.call('HSET', KEYS[i + 2], 'state', 'queued', 'job', ARGV[6 + 2 * i], 'tenant', ARGV[2],
    'attempts', 0, 'created_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'id', ARGV[5 + 2 * i])
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
return {'created', tostring(n)}
";

// KEYS: job hash
// ARGV: tenant
const FORGET: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 'not_found' end
if not terminal(state) then return 'state:' .. state end
redis.call('DEL', KEYS[1])
return 'forgotten'
";

// KEYS: job hash, stream, events channel
// ARGV: entry, worker, now, max deliveries, ttl, running event json, cancelled event json
const START: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then ackdel(KEYS[2], ARGV[1]); return {'gone', ''} end
if terminal(state) then ackdel(KEYS[2], ARGV[1]); return {'skip', state} end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  ackdel(KEYS[2], ARGV[1])
  redis.call('PUBLISH', KEYS[3], ARGV[7])
  return {'skip', 'cancelled'}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local retries = tonumber(redis.call('HGET', KEYS[1], 'retries') or '0')
-- Starts that were not retries scheduled by a worker are crashed or lost deliveries.
if attempts - retries > tonumber(ARGV[4]) then return {'dead', redis.call('HGET', KEYS[1], 'job')} end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[3], 'updated_at', ARGV[3],
  'worker', ARGV[2], 'entry', ARGV[1], 'stage', 'starting', 'percent', 0)
redis.call('PUBLISH', KEYS[3], ARGV[6])
return {'run', redis.call('HGET', KEYS[1], 'job'), tostring(attempts), tostring(retries)}
";

// KEYS: job hash, events channel
// ARGV: stage, percent, now, event json
const PROGRESS: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 1 end
redis.call('HSET', KEYS[1], 'stage', ARGV[1], 'percent', ARGV[2], 'updated_at', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[4])
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then return 1 end
return 0
";

// KEYS: job hash, stream, events channel, finished-counters hash
// ARGV: entry, state, field ('result' | 'error' | ''), payload, now, ttl, event json
const FINISH: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or terminal(state) then ackdel(KEYS[2], ARGV[1]); return 'already' end
-- Counted here, once per job, so the average never includes a duplicate delivery.
local started = tonumber(redis.call('HGET', KEYS[1], 'started_at') or '')
if ARGV[2] == 'succeeded' or ARGV[2] == 'failed' then redis.call('HINCRBY', KEYS[4], ARGV[2], 1) end
if ARGV[2] == 'succeeded' and started then
  redis.call('HINCRBY', KEYS[4], 'succeeded_ms', math.max(0, tonumber(ARGV[5]) - started))
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[5], 'updated_at', ARGV[5])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
if ARGV[2] == 'succeeded' then redis.call('HSET', KEYS[1], 'stage', 'done', 'percent', 100) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
ackdel(KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[7])
return 'ok'
";

// KEYS: job hash, stream, delayed set, events channel
// ARGV: entry, id, due, error json, now, ttl, event json
const RETRY: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or terminal(state) then ackdel(KEYS[2], ARGV[1]); return 'already' end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[5], 'updated_at', ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  ackdel(KEYS[2], ARGV[1])
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'error', ARGV[4], 'updated_at', ARGV[5],
  'stage', 'retry_wait', 'percent', 0, 'retry_at', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'retries', 1)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
ackdel(KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[4], ARGV[7])
return 'ok'
";

// KEYS: job hash, stream, dead stream, events channel
// ARGV: entry, id, error json, now, ttl, job json, event json
const DEAD: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if state and terminal(state) then ackdel(KEYS[2], ARGV[1]); return 'already' end
if state then
  redis.call('HSET', KEYS[1], 'state', 'dead', 'error', ARGV[3], 'finished_at', ARGV[4], 'updated_at', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
local job = ARGV[6]
if job == '' and state then job = redis.call('HGET', KEYS[1], 'job') or '' end
local dead_entry = redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'id', ARGV[2], 'error', ARGV[3], 'job', job, 'at', ARGV[4])
if state then redis.call('HSET', KEYS[1], 'dead_entry', dead_entry) end
ackdel(KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[4], ARGV[7])
return 'ok'
";

// KEYS: job hash, delayed set, events channel
// ARGV: tenant, id, now, ttl, event json
const CANCEL: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 'not_found' end
if terminal(state) then return 'terminal:' .. state end
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[3], 'updated_at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('PUBLISH', KEYS[3], ARGV[5])
  return 'cancelled'
end
redis.call('HSET', KEYS[1], 'cancel_requested', 1, 'updated_at', ARGV[3])
return 'cancelling'
";

// KEYS: job hash, stream, dead stream, events channel
// ARGV: tenant ('' = any), id, now, maxlen, max backlog, event json
const REQUEUE: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'not_found' end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'tenant') ~= ARGV[1] then return 'not_found' end
if state ~= 'dead' and state ~= 'failed' then return 'state:' .. state end
local backlog = tonumber(ARGV[5])
if backlog > 0 and redis.call('XLEN', KEYS[2]) >= backlog then return 'full' end
local dead_entry = redis.call('HGET', KEYS[1], 'dead_entry')
if dead_entry then redis.call('XDEL', KEYS[3], dead_entry) end
redis.call('HDEL', KEYS[1], 'error', 'result', 'started_at', 'finished_at', 'cancel_requested',
  'dead_entry', 'retry_at', 'worker', 'entry', 'stage', 'percent')
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'retries', 0, 'updated_at', ARGV[3])
redis.call('PERSIST', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'id', ARGV[2])
redis.call('PUBLISH', KEYS[4], ARGV[6])
return 'queued'
";

// KEYS: delayed set, stream
// ARGV: now, limit, maxlen
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', id)
end
return #due
";

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
}

impl Scripts {
    fn new() -> Self {
        let with_helpers = |body: &str| Script::new(&format!("{LUA_HELPERS}\n{body}"));
        Self {
            enqueue: Script::new(ENQUEUE),
            enqueue_batch: Script::new(ENQUEUE_BATCH),
            forget: with_helpers(FORGET),
            start: with_helpers(START),
            progress: Script::new(PROGRESS),
            finish: with_helpers(FINISH),
            retry: with_helpers(RETRY),
            dead: with_helpers(DEAD),
            cancel: with_helpers(CANCEL),
            requeue: Script::new(REQUEUE),
            promote: Script::new(PROMOTE),
        }
    }
}

/// Outcome of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Created(JobId),
    /// The idempotency key was seen before; this is the job it made.
    Existing(JobId),
}

impl Enqueued {
    pub fn id(self) -> JobId {
        match self {
            Self::Created(id) | Self::Existing(id) => id,
        }
    }
}

/// Outcome of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    NotFound,
    /// It was waiting; it will never run.
    Cancelled,
    /// It is running; the worker stops at its next stage boundary.
    Cancelling,
    AlreadyTerminal(JobState),
}

/// Outcome of a re-queue request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueOutcome {
    NotFound,
    /// Only dead and failed jobs can be re-queued.
    NotRetryable(JobState),
    Queued,
}

/// An entry of the dead stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadJob {
    pub id: String,
    pub tenant: String,
    pub error: Option<JobError>,
    /// When it was declared dead, RFC 3339.
    pub at: String,
}

/// One stream entry handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub entry_id: String,
    /// `None` for an entry without a readable job id; the worker drops it with a warning.
    pub job_id: Option<JobId>,
}

/// What a worker should do with a delivery.
#[derive(Debug)]
pub enum Start {
    /// `attempts` counts every start, `retries` the ones scheduled after transient errors.
    Run {
        job: Box<Job>,
        attempts: u32,
        retries: u32,
    },
    /// Already finished, cancelled, or its record expired; the entry has been acked.
    Skip(String),
    /// Delivered more often than allowed: move it to the dead stream.
    Dead {
        job: Option<Box<Job>>,
        attempts: u32,
    },
}

/// Counters for readiness checks, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Entries in the stream (waiting or in flight; acked ones are deleted).
    pub stream_len: u64,
    /// Entries delivered and not yet acked.
    pub pending: u64,
    /// Retries waiting for their backoff.
    pub delayed: u64,
    /// Jobs in the dead stream.
    pub dead: u64,
}

/// Outcome of forgetting an ended job's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetOutcome {
    NotFound,
    /// Only ended jobs can be forgotten; cancel a waiting or running one first.
    NotTerminal(JobState),
    Forgotten,
}

/// A consumer of the group, as `XINFO CONSUMERS` reports it. Consumers stay listed after
/// their worker stops, so `idle_ms` tells the living from the gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    pub name: String,
    /// Entries delivered to it and not yet acked.
    pub pending: u64,
    /// Milliseconds since it last read from the stream.
    pub idle_ms: u64,
}

/// Jobs that ended, counted once each by the finishing script since the prefix was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FinishedStats {
    pub succeeded: u64,
    /// Jobs the pipeline failed for good (bad input, no face, ...).
    pub failed: u64,
    /// Sum over succeeded jobs of finish time minus the start of their last attempt.
    pub succeeded_ms: u64,
}

impl FinishedStats {
    /// Mean processing time of a succeeded job, in ms.
    pub fn average_ms(&self) -> Option<f64> {
        (self.succeeded > 0).then(|| self.succeeded_ms as f64 / self.succeeded as f64)
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
    pool: Pool,
    keys: Keys,
    settings: QueueSettings,
    redis: RedisSettings,
    scripts: std::sync::Arc<Scripts>,
    /// Jobs this process created (not idempotent repeats), for metrics.
    enqueued: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Queue {
    /// Builds the pool; connects lazily, so Redis may come up later.
    pub fn new(redis: &RedisSettings, settings: &QueueSettings) -> Result<Self, QueueError> {
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(redis.timeout()))
            .set_response_timeout(Some(redis.timeout()));
        let manager = deadpool_redis::Manager::new_with_config(redis.url.as_str(), conn_config)?;
        let pool = Pool::builder(manager)
            .max_size(redis.pool_size)
            .wait_timeout(Some(redis.timeout()))
            .create_timeout(Some(redis.timeout()))
            .recycle_timeout(Some(redis.timeout()))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| QueueError::Pool(e.to_string()))?;
        Ok(Self {
            pool,
            keys: Keys::new(&redis.prefix),
            settings: settings.clone(),
            redis: redis.clone(),
            scripts: std::sync::Arc::new(Scripts::new()),
            enqueued: Default::default(),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, QueueError> {
        Ok(self.pool.get().await?)
    }

    /// Decides an enqueue whose answer did not come in time. Redis may have run the script and
    /// the answer be late or lost (a stalled server, a slow network): a client told "503" would
    /// then submit again and get a second job. Redis runs one connection's commands in order, so
    /// a read of `key` (what the script writes) sent after it on the same connection tells what
    /// happened. `Ok` means the script ran; any other failure gives back `error`.
    async fn settle(
        &self,
        c: &mut deadpool_redis::Connection,
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
        let res: redis::RedisResult<()> = c
            .xgroup_create_mkstream(self.keys.stream(), GROUP, "0")
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the status record and appends the job to the stream, atomically.
    pub async fn enqueue(&self, job: &Job) -> Result<Enqueued, QueueError> {
        let json = serde_json::to_string(job).map_err(|e| QueueError::Protocol(e.to_string()))?;
        let idem = job
            .idempotency_key
            .as_deref()
            .map(|k| self.keys.idem(&job.tenant, k))
            .unwrap_or_default();
        let mut c = self.conn().await?;
        let reply: Result<(String, String), redis::RedisError> = self
            .scripts
            .enqueue
            .key(self.keys.stream())
            .key(self.keys.job(&job.id))
            .key(idem)
            .arg(job.id.to_string())
            .arg(json)
            .arg(&job.tenant)
            .arg(now_ms())
            .arg(self.settings.status_ttl_secs)
            .arg(self.settings.stream_max_len)
            .arg(self.settings.max_backlog)
            .invoke_async(&mut c)
            .await;
        let (kind, value): (String, String) = match reply {
            Ok(reply) => reply,
            Err(e) => {
                return match self.settle(&mut c, e, &self.keys.job(&job.id)).await {
                    Ok(()) => {
                        self.enqueued
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Ok(Enqueued::Created(job.id))
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match kind.as_str() {
            "created" => {
                self.enqueued
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(Enqueued::Created(job.id))
            }
            "existing" => JobId::parse(&value)
                .map(Enqueued::Existing)
                .ok_or_else(|| QueueError::Protocol(format!("idempotency key holds `{value}`"))),
            "full" => Err(QueueError::Full(value.parse().unwrap_or(0))),
            other => Err(QueueError::Protocol(format!("enqueue answered `{other}`"))),
        }
    }

    /// The status record, if it exists and belongs to `tenant` (any tenant when `None`).
    pub async fn status(
        &self,
        id: &JobId,
        tenant: Option<&str>,
    ) -> Result<Option<JobStatus>, QueueError> {
        let mut c = self.conn().await?;
        let fields: HashMap<String, String> = c.hgetall(self.keys.job(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let status = parse_status(id, &fields)?;
        if tenant.is_some_and(|t| t != status.tenant) {
            return Ok(None);
        }
        Ok(Some(status))
    }

    /// Cancels a job of `tenant`: a waiting one at once, a running one at its next stage.
    pub async fn cancel(&self, id: &JobId, tenant: &str) -> Result<CancelOutcome, QueueError> {
        let mut c = self.conn().await?;
        let answer: String = self
            .scripts
            .cancel
            .key(self.keys.job(id))
            .key(self.keys.delayed())
            .key(self.keys.events(id))
            .arg(tenant)
            .arg(id.to_string())
            .arg(now_ms())
            .arg(self.settings.status_ttl_secs)
            .arg(event("cancelled", None, None))
            .invoke_async(&mut c)
            .await?;
        Ok(match answer.as_str() {
            "not_found" => CancelOutcome::NotFound,
            "cancelled" => CancelOutcome::Cancelled,
            "cancelling" => CancelOutcome::Cancelling,
            other => CancelOutcome::AlreadyTerminal(
                other
                    .strip_prefix("terminal:")
                    .and_then(JobState::parse)
                    .ok_or_else(|| QueueError::Protocol(format!("cancel answered `{other}`")))?,
            ),
        })
    }

    /// Marks a delivery as being processed by `worker`.
    pub async fn start(
        &self,
        d: &Delivery,
        job_id: &JobId,
        worker: &str,
    ) -> Result<Start, QueueError> {
        let mut c = self.conn().await?;
        let reply: Vec<String> = self
            .scripts
            .start
            .key(self.keys.job(job_id))
            .key(self.keys.stream())
            .key(self.keys.events(job_id))
            .arg(&d.entry_id)
            .arg(worker)
            .arg(now_ms())
            .arg(self.settings.max_deliveries)
            .arg(self.settings.status_ttl_secs)
            .arg(event("running", Some("starting"), Some(0)))
            .arg(event("cancelled", None, None))
            .invoke_async(&mut c)
            .await?;
        let parse_job = |s: &str| -> Result<Box<Job>, QueueError> {
            serde_json::from_str(s)
                .map(Box::new)
                .map_err(|e| QueueError::Corrupt {
                    id: job_id.to_string(),
                    reason: e.to_string(),
                })
        };
        match reply.first().map(String::as_str) {
            Some("run") if reply.len() == 4 => Ok(Start::Run {
                job: parse_job(&reply[1])?,
                attempts: reply[2].parse().unwrap_or(1),
                retries: reply[3].parse().unwrap_or(0),
            }),
            Some("dead") => Ok(Start::Dead {
                job: reply.get(1).and_then(|s| parse_job(s).ok()),
                attempts: self.settings.max_deliveries + 1,
            }),
            Some("skip" | "gone") => Ok(Start::Skip(reply.get(1).cloned().unwrap_or_default())),
            _ => Err(QueueError::Protocol(format!("start answered {reply:?}"))),
        }
    }

    /// Records progress; answers whether the job should stop (cancelled, or no longer running).
    pub async fn progress(&self, id: &JobId, stage: &str, percent: u8) -> Result<bool, QueueError> {
        let mut c = self.conn().await?;
        let stop: i64 = self
            .scripts
            .progress
            .key(self.keys.job(id))
            .key(self.keys.events(id))
            .arg(stage)
            .arg(percent)
            .arg(now_ms())
            .arg(event("running", Some(stage), Some(percent)))
            .invoke_async(&mut c)
            .await?;
        Ok(stop == 1)
    }

    async fn finish(
        &self,
        d: &Delivery,
        id: &JobId,
        state: JobState,
        field: &str,
        payload: String,
    ) -> Result<bool, QueueError> {
        let mut c = self.conn().await?;
        let answer: String = self
            .scripts
            .finish
            .key(self.keys.job(id))
            .key(self.keys.stream())
            .key(self.keys.events(id))
            .key(self.keys.finished())
            .arg(&d.entry_id)
            .arg(state.as_str())
            .arg(field)
            .arg(payload)
            .arg(now_ms())
            .arg(self.settings.status_ttl_secs)
            .arg(event(state.as_str(), None, None))
            .invoke_async(&mut c)
            .await?;
        Ok(answer == "ok")
    }

    /// Stores the result, marks the job succeeded and acks the entry. `false` when the job had
    /// already ended (a duplicate delivery), which is harmless.
    pub async fn succeed(
        &self,
        d: &Delivery,
        id: &JobId,
        result: &JobResult,
    ) -> Result<bool, QueueError> {
        let json =
            serde_json::to_string(result).map_err(|e| QueueError::Protocol(e.to_string()))?;
        self.finish(d, id, JobState::Succeeded, "result", json)
            .await
    }

    /// Marks the job failed for good and acks the entry.
    pub async fn fail(
        &self,
        d: &Delivery,
        id: &JobId,
        error: &JobError,
    ) -> Result<bool, QueueError> {
        let json = serde_json::to_string(error).map_err(|e| QueueError::Protocol(e.to_string()))?;
        self.finish(d, id, JobState::Failed, "error", json).await
    }

    /// Marks a running job cancelled (after the worker saw the request) and acks the entry.
    pub async fn cancelled(&self, d: &Delivery, id: &JobId) -> Result<bool, QueueError> {
        self.finish(d, id, JobState::Cancelled, "", String::new())
            .await
    }

    /// Puts the job back as `queued` after `delay`, through the delayed set, and acks the entry.
    pub async fn retry(
        &self,
        d: &Delivery,
        id: &JobId,
        error: &JobError,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let json = serde_json::to_string(error).map_err(|e| QueueError::Protocol(e.to_string()))?;
        let due = now_ms() + delay.as_millis() as u64;
        let mut c = self.conn().await?;
        let _: String = self
            .scripts
            .retry
            .key(self.keys.job(id))
            .key(self.keys.stream())
            .key(self.keys.delayed())
            .key(self.keys.events(id))
            .arg(&d.entry_id)
            .arg(id.to_string())
            .arg(due)
            .arg(json)
            .arg(now_ms())
            .arg(self.settings.status_ttl_secs)
            .arg(event("queued", Some("retry_wait"), None))
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Moves the job to the dead stream with status `dead`, and acks the entry.
    pub async fn dead(
        &self,
        d: &Delivery,
        id: &JobId,
        job: Option<&Job>,
        error: &JobError,
    ) -> Result<(), QueueError> {
        let err = serde_json::to_string(error).map_err(|e| QueueError::Protocol(e.to_string()))?;
        let job = job
            .and_then(|j| serde_json::to_string(j).ok())
            .unwrap_or_default();
        let mut c = self.conn().await?;
        let _: String = self
            .scripts
            .dead
            .key(self.keys.job(id))
            .key(self.keys.stream())
            .key(self.keys.dead())
            .key(self.keys.events(id))
            .arg(&d.entry_id)
            .arg(id.to_string())
            .arg(err)
            .arg(now_ms())
            .arg(self.settings.status_ttl_secs)
            .arg(job)
            .arg(event("dead", None, None))
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Acks and deletes an entry that cannot be processed at all (no readable job id).
    pub async fn discard(&self, d: &Delivery) -> Result<(), QueueError> {
        let mut c = self.conn().await?;
        let _: (i64, i64) = redis::pipe()
            .atomic()
            .xack(self.keys.stream(), GROUP, &[&d.entry_id])
            .xdel(self.keys.stream(), &[&d.entry_id])
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Resets the idle time of in-flight entries so no reaper takes them over. `XCLAIM JUSTID`
    /// leaves the delivery count alone.
    pub async fn renew(&self, consumer: &str, entries: &[String]) -> Result<(), QueueError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(self.keys.stream()).arg(GROUP).arg(consumer).arg(0);
        for e in entries {
            cmd.arg(e);
        }
        cmd.arg("JUSTID");
        let _: Value = cmd.query_async(&mut c).await?;
        Ok(())
    }

    /// Takes over up to `count` entries whose lease ran out (their worker died or hung).
    pub async fn reclaim(&self, consumer: &str, count: usize) -> Result<Vec<Delivery>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(self.keys.stream())
            .arg(GROUP)
            .arg(consumer)
            .arg(self.settings.lease_timeout_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        if !reply.deleted_ids.is_empty() {
            // Entries deleted while pending (e.g. trimmed): nothing left to run.
            let _: i64 = c
                .xack(self.keys.stream(), GROUP, &reply.deleted_ids)
                .await?;
        }
        Ok(reply.claimed.iter().map(delivery).collect())
    }

    /// Moves retries whose backoff has passed back onto the stream.
    pub async fn promote_due(&self, limit: usize) -> Result<usize, QueueError> {
        let mut c = self.conn().await?;
        let n: usize = self
            .scripts
            .promote
            .key(self.keys.delayed())
            .key(self.keys.stream())
            .arg(now_ms())
            .arg(limit)
            .arg(self.settings.stream_max_len)
            .invoke_async(&mut c)
            .await?;
        Ok(n)
    }

    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut c = self.conn().await?;
        let (stream_len, delayed, dead): (u64, u64, u64) = redis::pipe()
            .xlen(self.keys.stream())
            .zcard(self.keys.delayed())
            .xlen(self.keys.dead())
            .query_async(&mut c)
            .await?;
        let pending: redis::RedisResult<redis::streams::StreamPendingReply> =
            c.xpending(self.keys.stream(), GROUP).await;
        let pending = match pending {
            Ok(p) => p.count() as u64,
            Err(e) if e.code() == Some("NOGROUP") => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(QueueStats {
            stream_len,
            pending,
            delayed,
            dead,
        })
    }

    /// Entries of the dead stream, oldest first.
    pub async fn dead_jobs(&self, count: usize) -> Result<Vec<DeadJob>, QueueError> {
        let mut c = self.conn().await?;
        let reply: redis::streams::StreamRangeReply =
            c.xrange_count(self.keys.dead(), "-", "+", count).await?;
        Ok(reply
            .ids
            .iter()
            .map(|e| DeadJob {
                id: e.get::<String>("id").unwrap_or_default(),
                tenant: e
                    .get::<String>("job")
                    .and_then(|j| serde_json::from_str::<Job>(&j).ok())
                    .map(|j| j.tenant)
                    .unwrap_or_default(),
                error: e
                    .get::<String>("error")
                    .and_then(|s| serde_json::from_str(&s).ok()),
                at: e
                    .get::<String>("at")
                    .and_then(|a| a.parse().ok())
                    .map(rfc3339_ms)
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Puts a dead or failed job back on the stream with its attempts reset.
    pub async fn requeue(
        &self,
        id: &JobId,
        tenant: Option<&str>,
    ) -> Result<RequeueOutcome, QueueError> {
        let mut c = self.conn().await?;
        let answer: String = self
            .scripts
            .requeue
            .key(self.keys.job(id))
            .key(self.keys.stream())
            .key(self.keys.dead())
            .key(self.keys.events(id))
            .arg(tenant.unwrap_or_default())
            .arg(id.to_string())
            .arg(now_ms())
            .arg(self.settings.stream_max_len)
            .arg(self.settings.max_backlog)
            .arg(event("queued", None, None))
            .invoke_async(&mut c)
            .await?;
        match answer.as_str() {
            "not_found" => Ok(RequeueOutcome::NotFound),
            "queued" => Ok(RequeueOutcome::Queued),
            "full" => Err(QueueError::Full(self.settings.max_backlog)),
            other => other
                .strip_prefix("state:")
                .and_then(JobState::parse)
                .map(RequeueOutcome::NotRetryable)
                .ok_or_else(|| QueueError::Protocol(format!("requeue answered `{other}`"))),
        }
    }

    /// Enqueues several jobs of one tenant and stores `batch_json` under the batch key, all in
    /// one script: either every job is queued, or none is (`Full` when the backlog would
    /// overflow). Jobs carry no idempotency key here.
    pub async fn enqueue_batch(
        &self,
        batch_id: &JobId,
        batch_json: &str,
        jobs: &[Job],
    ) -> Result<(), QueueError> {
        let Some(first) = jobs.first() else {
            return Ok(());
        };
        let mut inv = self.scripts.enqueue_batch.prepare_invoke();
        inv.key(self.keys.stream()).key(self.keys.batch(batch_id));
        inv.arg(batch_json)
            .arg(&first.tenant)
            .arg(now_ms())
            .arg(self.settings.status_ttl_secs)
            .arg(self.settings.stream_max_len)
            .arg(self.settings.max_backlog);
        for job in jobs {
            if job.tenant != first.tenant {
                return Err(QueueError::Protocol(
                    "a batch holds one tenant's jobs".into(),
                ));
            }
            let json =
                serde_json::to_string(job).map_err(|e| QueueError::Protocol(e.to_string()))?;
            inv.key(self.keys.job(&job.id));
            inv.arg(job.id.to_string()).arg(json);
        }
        let mut c = self.conn().await?;
        let (kind, value): (String, String) = match inv.invoke_async(&mut c).await {
            Ok(reply) => reply,
            Err(e) => {
                self.settle(&mut c, e, &self.keys.batch(batch_id)).await?;
                self.enqueued
                    .fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
        };
        match kind.as_str() {
            "created" => {
                self.enqueued
                    .fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            "full" => Err(QueueError::Full(value.parse().unwrap_or(0))),
            other => Err(QueueError::Protocol(format!(
                "batch enqueue answered `{other}`"
            ))),
        }
    }

    /// The stored batch record; `touch` resets its time to live (while its jobs still run).
    pub async fn batch(&self, id: &JobId, touch: bool) -> Result<Option<String>, QueueError> {
        let mut c = self.conn().await?;
        let key = self.keys.batch(id);
        let json: Option<String> = c.get(&key).await?;
        if touch && json.is_some() {
            let _: bool = c.expire(&key, self.settings.status_ttl_secs as i64).await?;
        }
        Ok(json)
    }

    /// Status records of many jobs in one round trip, `None` where a record is gone or belongs
    /// to another tenant than `tenant` (any tenant when `None`).
    pub async fn statuses(
        &self,
        ids: &[JobId],
        tenant: Option<&str>,
    ) -> Result<Vec<Option<JobStatus>>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.job(id));
        }
        let mut c = self.conn().await?;
        let all: Vec<HashMap<String, String>> = pipe.query_async(&mut c).await?;
        ids.iter()
            .zip(all)
            .map(|(id, fields)| {
                if fields.is_empty() {
                    return Ok(None);
                }
                let status = parse_status(id, &fields)?;
                Ok(tenant.is_none_or(|t| t == status.tenant).then_some(status))
            })
            .collect()
    }

    /// Deletes the record of an ended job of `tenant` (its result objects are the caller's).
    pub async fn forget(&self, id: &JobId, tenant: &str) -> Result<ForgetOutcome, QueueError> {
        let mut c = self.conn().await?;
        let answer: String = self
            .scripts
            .forget
            .key(self.keys.job(id))
            .arg(tenant)
            .invoke_async(&mut c)
            .await?;
        match answer.as_str() {
            "not_found" => Ok(ForgetOutcome::NotFound),
            "forgotten" => Ok(ForgetOutcome::Forgotten),
            other => other
                .strip_prefix("state:")
                .and_then(JobState::parse)
                .map(ForgetOutcome::NotTerminal)
                .ok_or_else(|| QueueError::Protocol(format!("forget answered `{other}`"))),
        }
    }

    /// Consumers of the worker group (`XINFO CONSUMERS`); empty before the first worker.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, QueueError> {
        let mut c = self.conn().await?;
        let reply: redis::RedisResult<redis::streams::StreamInfoConsumersReply> =
            c.xinfo_consumers(self.keys.stream(), GROUP).await;
        match reply {
            Ok(r) => Ok(r
                .consumers
                .into_iter()
                .map(|w| WorkerInfo {
                    name: w.name,
                    pending: w.pending as u64,
                    idle_ms: w.idle as u64,
                })
                .collect()),
            Err(e) if e.code() == Some("NOGROUP") || e.to_string().contains("no such key") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Counters of ended jobs.
    pub async fn finished_stats(&self) -> Result<FinishedStats, QueueError> {
        let mut c = self.conn().await?;
        let f: HashMap<String, u64> = c.hgetall(self.keys.finished()).await?;
        let get = |k: &str| f.get(k).copied().unwrap_or(0);
        Ok(FinishedStats {
            succeeded: get("succeeded"),
            failed: get("failed"),
            succeeded_ms: get("succeeded_ms"),
        })
    }

    /// Jobs created through this handle (and its clones) since the process started.
    pub fn enqueued_total(&self) -> u64 {
        self.enqueued.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Entries of the stream not yet delivered to the consumer group (`XINFO GROUPS` lag);
    /// `None` while there is no group or Redis cannot tell (it can't after some deletions).
    pub async fn group_lag(&self) -> Result<Option<u64>, QueueError> {
        let mut c = self.conn().await?;
        let reply: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
            c.xinfo_groups(self.keys.stream()).await;
        match reply {
            Ok(r) => Ok(r
                .groups
                .iter()
                .find(|g| g.name == GROUP)
                .and_then(|g| g.lag)
                .map(|l| l as u64)),
            // No stream yet: nothing is waiting.
            Err(e) if e.to_string().contains("no such key") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Subscribes to the job's events channel on a connection of its own. Every message on it
    /// means the status record changed; the record itself stays the source of truth. Once this
    /// returns, no later change is missed (the subscription is confirmed by Redis).
    pub async fn subscribe(&self, id: &JobId) -> Result<JobEvents, QueueError> {
        let client = redis::Client::open(self.redis.url.as_str())?;
        let timeout = self.redis.timeout();
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
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

    /// Opens the dedicated connection a worker blocks on.
    pub async fn consumer(&self, name: &str) -> Result<Consumer, QueueError> {
        Consumer::connect(self.clone(), name).await
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

fn delivery(e: &StreamId) -> Delivery {
    Delivery {
        entry_id: e.id.clone(),
        job_id: e.get::<String>("id").as_deref().and_then(JobId::parse),
    }
}

/// A worker's reading end: one connection of its own, because `XREADGROUP BLOCK` holds it.
pub struct Consumer {
    queue: Queue,
    conn: MultiplexedConnection,
    name: String,
}

impl Consumer {
    async fn connect(queue: Queue, name: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(queue.redis.url.as_str())?;
        // redis-rs times responses out after 500 ms by default, which breaks a blocking read:
        // the entry would be delivered to a client that already gave up. No response timeout
        // here; `read` bounds the wait itself with BLOCK plus a margin.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(queue.redis.timeout()))
            .set_response_timeout(None);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Self {
            queue,
            conn,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `block` for at most `count` new entries.
    pub async fn read(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let opts = StreamReadOptions::default()
            .group(GROUP, &self.name)
            .count(count)
            .block(block.as_millis() as usize);
        let stream = self.queue.keys.stream();
        let keys = [&stream];
        let fut = self
            .conn
            .xread_options::<_, _, Option<StreamReadReply>>(&keys, &[">"], &opts);
        // A dead server or network must not hang the worker forever.
        let reply = match tokio::time::timeout(block + self.queue.redis.timeout(), fut).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) if e.code() == Some("NOGROUP") => {
                // Redis lost its data (restart without persistence): recreate and go on.
                self.queue.ensure_group().await?;
                return Ok(Vec::new());
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(QueueError::Protocol(format!(
                    "XREADGROUP gave no answer within {:?}",
                    block + self.queue.redis.timeout()
                )))
            }
        };
        Ok(reply
            .map(|r| {
                r.keys
                    .iter()
                    .flat_map(|k| k.ids.iter().map(delivery))
                    .collect()
            })
            .unwrap_or_default())
    }
}

fn parse_status(id: &JobId, f: &HashMap<String, String>) -> Result<JobStatus, QueueError> {
    let corrupt = |reason: String| QueueError::Corrupt {
        id: id.to_string(),
        reason,
    };
    let get = |k: &str| f.get(k).filter(|v| !v.is_empty());
    let ms = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    let state = get("state")
        .and_then(|s| JobState::parse(s))
        .ok_or_else(|| corrupt("missing or unknown state".into()))?;
    let job: Job = serde_json::from_str(get("job").ok_or_else(|| corrupt("missing job".into()))?)
        .map_err(|e| corrupt(e.to_string()))?;
    let progress = match (get("stage"), state) {
        (Some(stage), JobState::Running | JobState::Queued | JobState::Succeeded) => {
            Some(Progress {
                stage: stage.clone(),
                percent: get("percent").and_then(|p| p.parse().ok()).unwrap_or(0),
            })
        }
        _ => None,
    };
    let error = match get("error") {
        Some(e) => Some(serde_json::from_str::<JobError>(e).map_err(|e| corrupt(e.to_string()))?),
        None => None,
    };
    let result = match get("result") {
        Some(r) => Some(serde_json::from_str::<JobResult>(r).map_err(|e| corrupt(e.to_string()))?),
        None => None,
    };
    let created = ms("created_at").unwrap_or(job.created_at_ms);
    Ok(JobStatus {
        id: *id,
        state,
        attempts: get("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
        progress,
        created_at: rfc3339_ms(created),
        updated_at: rfc3339_ms(ms("updated_at").unwrap_or(created)),
        started_at: ms("started_at").map(rfc3339_ms),
        finished_at: ms("finished_at").map(rfc3339_ms),
        cancel_requested: (get("cancel_requested").map(String::as_str) == Some("1")
            && !state.is_terminal())
        .then_some(true),
        input: job.input,
        params: job.params,
        output: job.output,
        // A succeeded job's last transient error is history, not news.
        error: if state == JobState::Succeeded {
            None
        } else {
            error
        },
        result,
        tenant: get("tenant").cloned().unwrap_or_default(),
    })
}
