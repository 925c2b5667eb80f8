//! From the untagged key layout of earlier versions (`facecraft:jobs`) to the hash-tagged one
//! (`{facecraft}:jobs`, docs/redis.md). A one-off step with the fleet stopped:
//! `facecraft-worker migrate-keys`. It renames, so waiting and in-flight jobs, the consumer
//! group with its pending entries, and every expiry carry over unchanged.

use redis::AsyncCommands;

use super::{Queue, QueueError};
use crate::config::RedisMode;

/// Keys of the old layout, by name after `prefix:`.
const SINGLE: &[&str] = &[
    "jobs",
    "jobs:gpu",
    "dead",
    "delayed",
    "workers",
    "stats:finished",
];
/// Families of keys, by the start of the name after `prefix:`. (`events:` are channels.)
const FAMILIES: &[&str] = &["job:", "idem:", "batch:", "rate:", "worker:"];

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migration {
    pub renamed: u64,
    /// Old keys left alone because the new name was taken, with the reason.
    pub kept: Vec<(String, String)>,
}

impl Queue {
    fn legacy_name(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&format!("{}:", self.keys.prefix()))?;
        (SINGLE.contains(&rest) || FAMILIES.iter().any(|f| rest.starts_with(f)))
            .then(|| format!("{}:{rest}", self.keys.tag()))
    }

    fn refuse_cluster(&self) -> Result<(), QueueError> {
        match self.redis.mode() {
            Ok(RedisMode::Cluster { .. }) => Err(QueueError::Config(
                "the untagged layout never worked on a cluster: migrate on the single node or \
                 Sentinel primary it ran on"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the untagged layout's main keys are still there (its stream, delayed set or dead
    /// stream); `false` in cluster mode, where it never ran.
    pub async fn has_legacy_keys(&self) -> Result<bool, QueueError> {
        if self.refuse_cluster().is_err() {
            return Ok(false);
        }
        let mut c = self.conn().await?;
        for name in ["jobs", "delayed", "dead"] {
            let key = format!("{}:{name}", self.keys.prefix());
            if c.exists::<_, bool>(&key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Logs a warning when the untagged layout's keys are still there: jobs in them wait
    /// unseen until `facecraft-worker migrate-keys` runs.
    pub async fn warn_if_legacy(&self) {
        match self.has_legacy_keys().await {
            Ok(true) => tracing::warn!(
                prefix = self.keys.prefix(),
                "keys of the untagged layout of earlier versions are in Redis; their jobs wait \
                 unseen until `facecraft-worker migrate-keys` runs (stop the fleet first)"
            ),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "could not look for keys of the old layout"),
        }
    }

    /// Renames every key of the untagged layout to its tagged name. Run it with no API or
    /// worker on this prefix. A tagged stream that a worker of the new version already created
    /// is replaced only while it is empty with nothing pending; any other taken name keeps its
    /// old key, reported in [`Migration::kept`].
    pub async fn migrate_legacy_keys(&self) -> Result<Migration, QueueError> {
        self.refuse_cluster()?;
        let mut c = self.conn().await?;
        let pattern = format!("{}:*", self.keys.prefix());
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await?;
            found.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        found.sort();
        found.dedup();
        let mut out = Migration::default();
        for old in found {
            let Some(new) = self.legacy_name(&old) else {
                continue;
            };
            if c.exists::<_, bool>(&new).await? {
                let rest = &old[self.keys.prefix().len() + 1..];
                let is_stream = matches!(rest, "jobs" | "jobs:gpu" | "dead");
                if is_stream && self.stream_is_unused(&mut c, &new).await? {
                    let _: i64 = c.del(&new).await?;
                } else {
                    out.kept.push((old, format!("{new} exists")));
                    continue;
                }
            }
            let renamed: bool = redis::cmd("RENAMENX")
                .arg(&old)
                .arg(&new)
                .query_async(&mut c)
                .await?;
            if renamed {
                out.renamed += 1;
            } else {
                out.kept.push((old, format!("{new} appeared meanwhile")));
            }
        }
        Ok(out)
    }

    /// An empty stream with no pending entries in any group: what a new worker creates.
    async fn stream_is_unused(
        &self,
        c: &mut super::conn::Conn,
        key: &str,
    ) -> Result<bool, QueueError> {
        let len: u64 = c.xlen(key).await?;
        if len > 0 {
            return Ok(false);
        }
        let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(key)
            .query_async(c)
            .await?;
        Ok(groups
            .iter()
            .all(|g| matches!(g.get("pending"), Some(redis::Value::Int(0)) | None)))
    }
}
