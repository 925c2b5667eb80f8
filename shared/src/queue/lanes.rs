//! Lanes without workers. A GPU-lane job (restoration) can only run on a worker that loaded
//! the restoration engine; GPU workers may scale from zero, so a job waits for one, but not
//! forever: once no worker of the lane has been alive for `FACECRAFT_NO_GPU_WORKER_TIMEOUT_SECS`
//! and a job has waited as long, it fails with `no_gpu_worker`. Any process may sweep (the API
//! does, and every CPU worker); each job is failed by one script that checks again that no
//! worker of the lane has announced itself, so a worker arriving mid-sweep keeps its jobs.

use std::time::Duration;

use redis::AsyncCommands;

use facecraft_contract::error::{ErrorCode, JobError};
use facecraft_contract::job::{now_ms, JobId, Lane};

use super::{event, Queue, QueueError};

/// Jobs failed per sweep at most; the next sweep takes the rest.
const SWEEP_LIMIT: usize = 500;

impl Queue {
    /// Until when (ms since the epoch) `lane` has had a live worker; 0 when none ever
    /// announced itself (or Redis lost the key).
    pub async fn lane_alive_until(&self, lane: Lane) -> Result<u64, QueueError> {
        let mut c = self.conn().await?;
        let v: Option<u64> = c.get(self.keys.lane_alive(lane)).await?;
        Ok(v.unwrap_or(0))
    }

    /// Fails the jobs of `lane` that no worker could take within `timeout` (see the module
    /// comment). Returns how many were failed.
    pub async fn fail_unserved(&self, lane: Lane, timeout: Duration) -> Result<usize, QueueError> {
        let now = now_ms();
        let cutoff = now.saturating_sub(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        if self.lane_alive_until(lane).await? > cutoff {
            return Ok(0);
        }
        let mut c = self.conn().await?;
        // Entries added at or before the cutoff (an entry id starts with its time in ms):
        // waiting, or delivered to a worker that has been gone for the whole timeout.
        let waiting: redis::streams::StreamRangeReply = c
            .xrange_count(
                self.keys.stream_for(lane),
                "-",
                cutoff.to_string(),
                SWEEP_LIMIT,
            )
            .await?;
        // Retries whose backoff ended before the cutoff: nobody promoted them.
        let delayed: Vec<String> = c
            .zrangebyscore_limit(
                self.keys.delayed_for(lane),
                "-inf",
                cutoff,
                0,
                SWEEP_LIMIT as isize,
            )
            .await?;
        drop(c);
        let candidates = waiting
            .ids
            .iter()
            .filter_map(|e| {
                let id = e.get::<String>("id").as_deref().and_then(JobId::parse)?;
                Some((e.id.clone(), id))
            })
            .chain(
                delayed
                    .iter()
                    .filter_map(|id| JobId::parse(id).map(|id| (String::new(), id))),
            );
        let error = JobError::new(
            ErrorCode::NoGpuWorker,
            format!(
                "no worker served the {lane} lane for {} s (FACECRAFT_NO_GPU_WORKER_TIMEOUT_SECS); \
                 this job needs one that loaded the restoration engine (FACECRAFT_RESTORER)",
                timeout.as_secs()
            ),
        );
        let error =
            serde_json::to_string(&error).map_err(|e| QueueError::Protocol(e.to_string()))?;
        let mut failed = 0;
        for (entry, id) in candidates {
            let mut c = self.conn().await?;
            let answer: String = self
                .scripts
                .unserved
                .key(self.keys.job(&id))
                .key(self.keys.stream_for(lane))
                .key(self.keys.delayed_for(lane))
                .key(self.keys.lane_alive(lane))
                .key(self.keys.events(&id))
                .key(self.keys.finished())
                .arg(&entry)
                .arg(id.to_string())
                .arg(now)
                .arg(cutoff)
                .arg(&error)
                .arg(self.settings.status_ttl_secs)
                .arg(event("failed", None, None))
                .invoke_async(&mut c)
                .await?;
            match answer.as_str() {
                "failed" => failed += 1,
                // A worker of the lane came up: it takes the rest.
                "served" => break,
                _ => {}
            }
        }
        if failed > 0 {
            tracing::warn!(
                lane = %lane,
                failed,
                timeout_s = timeout.as_secs(),
                "failed jobs that no worker of their lane could take (no_gpu_worker)"
            );
        }
        Ok(failed)
    }
}
