//! Facecraft worker: consumes portrait jobs from Redis Streams (`serve`) or runs the same
//! pipeline (`facecraft-pipeline`) over local files (`process`).

pub mod config;
mod context;
mod job;
mod metrics;
pub mod process;
pub mod serve;

pub use facecraft_shared::shutdown_signal;
pub use serve::serve;

/// `facecraft-worker migrate-keys`: renames the untagged layout's keys and reports what it did.
pub fn migrate_keys(redis: &facecraft_shared::config::RedisSettings) -> anyhow::Result<()> {
    use anyhow::Context;
    redis
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async {
        let queue = facecraft_shared::queue::Queue::new(redis, &Default::default())?;
        let done = queue.migrate_legacy_keys().await?;
        for (key, why) in &done.kept {
            tracing::warn!(key, why, "left in place");
        }
        tracing::info!(
            prefix = %redis.prefix,
            renamed = done.renamed,
            kept = done.kept.len(),
            "keys migrated to the hash-tagged layout"
        );
        if done.kept.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(
                "{} keys could not be renamed; see the warnings",
                done.kept.len()
            )
        }
    })
}
