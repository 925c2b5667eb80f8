//! Prometheus gauges of the queue, the same on the API's and the workers' `/metrics`.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::queue::{Queue, QueueError, QueueStats};

/// Registers the queue gauges and `redis_up`, reading Redis for at most `timeout`. Only
/// figures Redis actually gave are reported: a missing series says "unknown", a zero would lie.
pub async fn register_queue(registry: &mut Registry, queue: &Queue, timeout: Duration) {
    let read = async {
        let stats = queue.stats().await?;
        let lag = queue.group_lag().await?;
        Ok::<_, QueueError>((stats, lag))
    };
    let up = Gauge::<i64>::default();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok((stats, lag))) => {
            up.set(1);
            register_stats(registry, &stats, lag);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: reading the queue failed"),
        Err(_) => tracing::warn!("metrics: redis gave no answer within {timeout:?}"),
    }
    registry.register(
        "redis_up",
        "1 when Redis answered this scrape's queue queries",
        up,
    );
}

fn register_stats(registry: &mut Registry, stats: &QueueStats, lag: Option<u64>) {
    let mut gauge = |name: &str, help: &str, value: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    };
    gauge(
        "queue_length",
        "Entries in the jobs stream: waiting or in flight",
        stats.stream_len,
    );
    gauge(
        "queue_pending",
        "Entries delivered to a worker and not yet acknowledged",
        stats.pending,
    );
    gauge(
        "queue_delayed",
        "Retries waiting for their backoff",
        stats.delayed,
    );
    gauge("queue_dead", "Jobs in the dead stream", stats.dead);
    if let Some(lag) = lag {
        gauge(
            "queue_lag",
            "Entries of the jobs stream not yet delivered to the consumer group",
            lag,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn lag_is_left_out_when_redis_did_not_give_it() {
        let stats = QueueStats {
            stream_len: 3,
            pending: 1,
            delayed: 0,
            dead: 2,
        };
        let mut with = Registry::default();
        register_stats(&mut with, &stats, Some(7));
        let mut without = Registry::default();
        register_stats(&mut without, &stats, None);
        let (with, without) = (text(&with), text(&without));
        assert!(
            with.contains("queue_length 3\n") && with.contains("queue_dead 2\n"),
            "{with}"
        );
        assert!(with.contains("queue_lag 7\n"), "{with}");
        assert!(!without.contains("queue_lag"), "{without}");
    }
}
