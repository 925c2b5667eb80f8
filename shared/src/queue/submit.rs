//! What the API does to jobs: enqueue one or a batch, cancel, re-queue a dead or failed one,
//! forget an ended one. Each is one Lua script, so a job's record and the stream never disagree.

use facecraft_contract::job::{now_ms, Job, JobId, JobState, Lane};

use super::{event, Queue, QueueError};

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

/// Outcome of forgetting an ended job's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetOutcome {
    NotFound,
    /// Only ended jobs can be forgotten; cancel a waiting or running one first.
    NotTerminal(JobState),
    Forgotten,
}

impl Queue {
    /// Stores the status record and appends the job to the stream, atomically.
    pub async fn enqueue(&self, job: &Job) -> Result<Enqueued, QueueError> {
        let json = serde_json::to_string(job).map_err(|e| QueueError::Protocol(e.to_string()))?;
        let idem = job
            .idempotency_key
            .as_deref()
            .map(|k| self.keys.idem(&job.tenant, k));
        let has_idem = if idem.is_some() { "1" } else { "0" };
        let idem = idem.unwrap_or_else(|| self.keys.no_idem());
        let mut c = self.conn().await?;
        let reply: Result<(String, String), redis::RedisError> = self
            .scripts
            .enqueue
            .key(self.keys.stream_for(job.params.lane()))
            .key(self.keys.job(&job.id))
            .key(idem)
            .arg(job.id.to_string())
            .arg(json)
            .arg(&job.tenant)
            .arg(now_ms())
            .arg(self.settings.status_ttl_secs)
            .arg(self.settings.stream_max_len)
            .arg(self.settings.max_backlog)
            .arg(has_idem)
            .arg(job.params.lane().as_str())
            .invoke_async(&mut c)
            .await;
        let (kind, value): (String, String) = match reply {
            Ok(reply) => reply,
            Err(e) => {
                return match self.settle(&mut c, e, &self.keys.job(&job.id)).await {
                    Ok(()) => {
                        self.replicate(&mut c).await?;
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
                self.replicate(&mut c).await?;
                self.enqueued
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(Enqueued::Created(job.id))
            }
            "existing" => {
                let id = JobId::parse(&value).ok_or_else(|| {
                    QueueError::Protocol(format!("idempotency key holds `{value}`"))
                })?;
                // A replay after a refused enqueue finds the job the refused attempt wrote;
                // it is no safer now unless the replicas have it (Redis counts this
                // connection's writes, which on a shared connection include most recent ones).
                self.replicate(&mut c).await?;
                Ok(Enqueued::Existing(id))
            }
            "full" => Err(QueueError::Full(value.parse().unwrap_or(0))),
            other => Err(QueueError::Protocol(format!("enqueue answered `{other}`"))),
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
        inv.key(self.keys.stream_for(Lane::Cpu))
            .key(self.keys.stream_for(Lane::Gpu))
            .key(self.keys.batch(batch_id));
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
            inv.arg(job.id.to_string())
                .arg(json)
                .arg(job.params.lane().as_str());
        }
        let mut c = self.conn().await?;
        let (kind, value): (String, String) = match inv.invoke_async(&mut c).await {
            Ok(reply) => reply,
            Err(e) => {
                self.settle(&mut c, e, &self.keys.batch(batch_id)).await?;
                self.replicate(&mut c).await?;
                self.enqueued
                    .fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
        };
        match kind.as_str() {
            "created" => {
                self.replicate(&mut c).await?;
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

    /// Cancels a job of `tenant`: a waiting one at once, a running one at its next stage.
    pub async fn cancel(&self, id: &JobId, tenant: &str) -> Result<CancelOutcome, QueueError> {
        let mut c = self.conn().await?;
        let answer: String = self
            .scripts
            .cancel
            .key(self.keys.job(id))
            .key(self.keys.delayed_for(Lane::Cpu))
            .key(self.keys.delayed_for(Lane::Gpu))
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

    /// Puts a dead or failed job back on its lane's stream with its attempts reset.
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
            .key(self.keys.stream_for(Lane::Cpu))
            .key(self.keys.stream_for(Lane::Gpu))
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
}
