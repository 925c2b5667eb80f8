//! A worker's side of the queue: reading deliveries, starting, reporting progress, finishing,
//! retrying or burying a job, and keeping or taking over leases on in-flight entries.

use std::time::Duration;

use futures::future::BoxFuture;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Value};

use facecraft_contract::error::JobError;
use facecraft_contract::job::{now_ms, Job, JobId, JobResult, JobState};

use super::conn::{AnyConn, Connector};
use super::{event, Queue, QueueError, GROUP};

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

impl Queue {
    /// Marks a delivery as being processed by `worker`. Starts made while others are on their
    /// way go to Redis together (coalesce.rs).
    pub async fn start(
        &self,
        d: &Delivery,
        job_id: &JobId,
        worker: &str,
    ) -> Result<Start, QueueError> {
        let req = StartReq {
            job: *job_id,
            entry: d.entry_id.clone(),
            worker: worker.to_owned(),
            stream: self.stream(),
        };
        self.batches.start.call(self, req, start_batch).await
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
        field: &'static str,
        payload: String,
    ) -> Result<bool, QueueError> {
        let req = FinishReq {
            job: *id,
            entry: d.entry_id.clone(),
            stream: self.stream(),
            state,
            field,
            payload,
        };
        self.batches.finish.call(self, req, finish_batch).await
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
            .key(self.stream())
            .key(self.delayed())
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
            .key(self.stream())
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
            .xack(self.stream(), GROUP, &[&d.entry_id])
            .xdel(self.stream(), &[&d.entry_id])
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
        cmd.arg(self.stream()).arg(GROUP).arg(consumer).arg(0);
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
            .arg(self.stream())
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
            let _: i64 = c.xack(self.stream(), GROUP, &reply.deleted_ids).await?;
        }
        Ok(reply.claimed.iter().map(delivery).collect())
    }

    /// Moves retries whose backoff has passed back onto the stream.
    pub async fn promote_due(&self, limit: usize) -> Result<usize, QueueError> {
        let mut c = self.conn().await?;
        let n: usize = self
            .scripts
            .promote
            .key(self.delayed())
            .key(self.stream())
            .arg(now_ms())
            .arg(limit)
            .arg(self.settings.stream_max_len)
            .invoke_async(&mut c)
            .await?;
        Ok(n)
    }

    /// Opens the dedicated connection a worker blocks on.
    pub async fn consumer(&self, name: &str) -> Result<Consumer, QueueError> {
        Consumer::connect(self.clone(), name).await
    }
}

fn delivery(e: &StreamId) -> Delivery {
    Delivery {
        entry_id: e.id.clone(),
        job_id: e.get::<String>("id").as_deref().and_then(JobId::parse),
    }
}

/// One delivery to start, in a batch (coalesce.rs).
pub(super) struct StartReq {
    job: JobId,
    entry: String,
    worker: String,
    stream: String,
}

/// One job to end, in a batch (coalesce.rs).
pub(super) struct FinishReq {
    job: JobId,
    entry: String,
    stream: String,
    state: JobState,
    field: &'static str,
    payload: String,
}

/// Each answer of a batched script on its own, so one job's odd record fails only that job.
fn answers<T: redis::FromRedisValue>(
    reply: Value,
    n: usize,
) -> Result<Vec<Result<T, QueueError>>, QueueError> {
    let Value::Array(items) = reply else {
        return Err(QueueError::Protocol(format!(
            "a batched script answered {reply:?}"
        )));
    };
    if items.len() != n {
        return Err(QueueError::Protocol(format!(
            "a batched script answered {} of {n} jobs",
            items.len()
        )));
    }
    Ok(items
        .into_iter()
        .map(|v| T::from_redis_value(v).map_err(|e| QueueError::Protocol(format!("{e}"))))
        .collect())
}

fn start_batch(
    q: Queue,
    reqs: Vec<StartReq>,
) -> BoxFuture<'static, Result<Vec<Result<Start, QueueError>>, QueueError>> {
    Box::pin(async move {
        let mut inv = q.scripts.start.prepare_invoke();
        inv.arg(now_ms())
            .arg(q.settings.max_deliveries)
            .arg(q.settings.status_ttl_secs)
            .arg(event("running", Some("starting"), Some(0)))
            .arg(event("cancelled", None, None));
        for r in &reqs {
            inv.key(q.keys.job(&r.job))
                .key(q.keys.events(&r.job))
                .key(&r.stream)
                .arg(&r.entry)
                .arg(&r.worker);
        }
        let mut c = q.conn().await?;
        let reply: Value = inv.invoke_async(&mut c).await?;
        let replies = answers::<Vec<String>>(reply, reqs.len())?;
        Ok(reqs
            .iter()
            .zip(replies)
            .map(|(r, reply)| parse_start(&q, &r.job, reply?))
            .collect())
    })
}

fn parse_start(q: &Queue, job_id: &JobId, reply: Vec<String>) -> Result<Start, QueueError> {
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
            attempts: q.settings.max_deliveries + 1,
        }),
        Some("skip" | "gone") => Ok(Start::Skip(reply.get(1).cloned().unwrap_or_default())),
        Some("corrupt") => Err(QueueError::Corrupt {
            id: job_id.to_string(),
            reason: reply.get(1).cloned().unwrap_or_default(),
        }),
        _ => Err(QueueError::Protocol(format!("start answered {reply:?}"))),
    }
}

fn finish_batch(
    q: Queue,
    reqs: Vec<FinishReq>,
) -> BoxFuture<'static, Result<Vec<Result<bool, QueueError>>, QueueError>> {
    Box::pin(async move {
        let mut inv = q.scripts.finish.prepare_invoke();
        inv.key(q.keys.finished())
            .arg(now_ms())
            .arg(q.settings.status_ttl_secs);
        for r in &reqs {
            inv.key(q.keys.job(&r.job))
                .key(q.keys.events(&r.job))
                .key(&r.stream)
                .arg(&r.entry)
                .arg(r.state.as_str())
                .arg(r.field)
                .arg(&r.payload)
                .arg(event(r.state.as_str(), None, None));
        }
        let mut c = q.conn().await?;
        let reply: Value = inv.invoke_async(&mut c).await?;
        Ok(answers::<String>(reply, reqs.len())?
            .into_iter()
            .map(|a| a.map(|a| a == "ok"))
            .collect())
    })
}

/// A worker's reading end: one connection of its own, because `XREADGROUP BLOCK` holds it.
pub struct Consumer {
    queue: Queue,
    conn: AnyConn,
    name: String,
}

impl Consumer {
    async fn connect(queue: Queue, name: &str) -> Result<Self, QueueError> {
        let connector = Connector::new(&queue.redis, None)?;
        // redis-rs times responses out after 500 ms by default, which breaks a blocking read:
        // the entry would be delivered to a client that already gave up. No response timeout
        // here; `read` bounds the wait itself with BLOCK plus a margin.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(queue.redis.timeout()))
            .set_response_timeout(None);
        let conn = connector.connect(&config).await?;
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
        let stream = self.queue.stream();
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
