//! Workers' self-descriptions: each running worker refreshes `{p}:worker:{name}` (its device
//! and the models it loaded, JSON) with a short expiry, indexed by `{p}:workers` (a sorted set
//! of expiry times), so the API can say what the fleet runs without asking any worker.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use facecraft_contract::job::{now_ms, Lane};

use super::{Queue, QueueError};

/// The compute device a worker's engines run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `cpu`, or `cuda` when an engine runs on ONNX Runtime's CUDA provider (`FACECRAFT_DEVICE`;
    /// the provider must register, so a silent CPU fallback cannot report `cuda`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The processor's model name, when the system tells it.
    pub name: Option<String>,
    pub cuda_version: Option<String>,
}

/// One model a worker has in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub loaded: bool,
    /// `detection`, `landmarks` or `segmentation`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// What a worker says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerAnnouncement {
    pub name: String,
    pub version: String,
    pub device: DeviceInfo,
    pub models: BTreeMap<String, ModelInfo>,
    /// Jobs it runs at once.
    pub concurrency: usize,
    /// The lane it consumes (`gpu` when it loaded the restoration engine). Announcements of
    /// versions before lanes have none: they served the CPU stream.
    #[serde(default)]
    pub lane: Lane,
}

impl Queue {
    /// Publishes `a` for `ttl`; call again well within it while the worker runs.
    pub async fn announce(&self, a: &WorkerAnnouncement, ttl: Duration) -> Result<(), QueueError> {
        let json = serde_json::to_string(a).map_err(|e| QueueError::Protocol(e.to_string()))?;
        let now = now_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let index = self.keys.workers();
        let mut c = self.conn().await?;
        let _: () = redis::pipe()
            .set_options(
                self.keys.worker(&a.name),
                json,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms)),
            )
            .ignore()
            .zadd(&index, &a.name, now.saturating_add(ttl_ms))
            .ignore()
            // The index outlives no announcement: it goes when the last worker stops refreshing.
            .pexpire(&index, i64::try_from(ttl_ms).unwrap_or(i64::MAX))
            .ignore()
            // Entries of workers that stopped refreshing.
            .zrembyscore(&index, "-inf", now)
            .ignore()
            // The lane has a worker until at least then (`fail_unserved` reads it). Workers of
            // one lane announce with the same ttl, so the last writer's time is the latest. The
            // key outlives that by the no-GPU-worker timeout (at least a day): a sweep that found
            // it gone would take the lane for never served and fail jobs too early.
            .set_options(
                self.keys.lane_alive(a.lane),
                now.saturating_add(ttl_ms),
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(
                    ttl_ms.saturating_add(
                        self.settings
                            .no_gpu_worker_timeout_secs
                            .max(86_400)
                            .saturating_mul(1_000),
                    ),
                )),
            )
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Withdraws a stopping worker's announcement.
    pub async fn retire(&self, name: &str) -> Result<(), QueueError> {
        let mut c = self.conn().await?;
        let _: () = redis::pipe()
            .del(self.keys.worker(name))
            .ignore()
            .zrem(self.keys.workers(), name)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// The announcements of the workers alive now, by name. An unreadable one is skipped with
    /// a warning rather than hiding the others.
    pub async fn live_workers(&self) -> Result<Vec<WorkerAnnouncement>, QueueError> {
        let mut c = self.conn().await?;
        let names: Vec<String> = c
            .zrangebyscore(self.keys.workers(), now_ms(), "+inf")
            .await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| self.keys.worker(n)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        let mut out: Vec<WorkerAnnouncement> = values
            .into_iter()
            .zip(&names)
            .filter_map(|(v, name)| {
                let v = v?;
                serde_json::from_str(&v)
                    .map_err(|e| tracing::warn!(worker = %name, error = %e, "unreadable worker announcement"))
                    .ok()
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
