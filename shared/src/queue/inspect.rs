//! Read-only views of the queue: job status records, counters, the dead stream, batches and the
//! worker group, for the API, the metrics and operators.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde::Serialize;

use facecraft_contract::error::JobError;
use facecraft_contract::job::{
    rfc3339_ms, Job, JobId, JobResult, JobState, JobStatus, Lane, Progress,
};

use super::{Queue, QueueError, GROUP};

/// An entry of the dead stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadJob {
    pub id: String,
    pub tenant: String,
    pub error: Option<JobError>,
    /// When it was declared dead, RFC 3339.
    pub at: String,
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

impl Queue {
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

    /// Figures of the lane this handle consumes (the CPU lane for the API's).
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.lane_stats(self.lane()).await
    }

    /// Figures of one lane; `dead` counts the one dead stream all lanes share.
    pub async fn lane_stats(&self, lane: Lane) -> Result<QueueStats, QueueError> {
        let mut c = self.conn().await?;
        let stream = self.keys.stream_for(lane);
        let (stream_len, delayed, dead): (u64, u64, u64) = redis::pipe()
            .xlen(&stream)
            .zcard(self.keys.delayed_for(lane))
            .xlen(self.keys.dead())
            .query_async(&mut c)
            .await?;
        let pending: redis::RedisResult<redis::streams::StreamPendingReply> =
            c.xpending(&stream, GROUP).await;
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

    /// Consumers of the worker group of this handle's lane (`XINFO CONSUMERS`); empty before
    /// the first worker.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, QueueError> {
        let mut c = self.conn().await?;
        let reply: redis::RedisResult<redis::streams::StreamInfoConsumersReply> =
            c.xinfo_consumers(self.stream(), GROUP).await;
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

    /// Enqueues this handle answered before `FACECRAFT_REDIS_WAIT_REPLICAS` replicas had them.
    pub fn unreplicated_total(&self) -> u64 {
        self.unreplicated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Entries of the stream not yet delivered to the consumer group (`XINFO GROUPS` lag);
    /// `None` while there is no group or Redis cannot tell (it can't after some deletions).
    pub async fn group_lag(&self) -> Result<Option<u64>, QueueError> {
        self.group_lag_for(self.lane()).await
    }

    /// [`group_lag`](Self::group_lag) of one lane's stream.
    pub async fn group_lag_for(&self, lane: Lane) -> Result<Option<u64>, QueueError> {
        let mut c = self.conn().await?;
        let reply: redis::RedisResult<redis::streams::StreamInfoGroupsReply> =
            c.xinfo_groups(self.keys.stream_for(lane)).await;
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
