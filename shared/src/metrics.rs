//! Prometheus gauges of the queue, the same on the API's and the workers' `/metrics`.

use std::time::Duration;

use facecraft_contract::job::Lane;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::queue::{Queue, QueueError, QueueStats};

/// One lane's figures as Redis gave them.
struct LaneFigures {
    lane: Lane,
    stats: QueueStats,
    lag: Option<u64>,
}

/// Registers the queue gauges of every lane (label `lane`: `cpu`, `gpu`) and `redis_up`,
/// reading Redis for at most `timeout`. Only figures Redis actually gave are reported: a
/// missing series says "unknown", a zero would lie.
pub async fn register_queue(registry: &mut Registry, queue: &Queue, timeout: Duration) {
    let read = async {
        let mut lanes = Vec::with_capacity(Lane::ALL.len());
        for lane in Lane::ALL {
            lanes.push(LaneFigures {
                lane,
                stats: queue.lane_stats(lane).await?,
                lag: queue.group_lag_for(lane).await?,
            });
        }
        Ok::<_, QueueError>(lanes)
    };
    let up = Gauge::<i64>::default();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(lanes)) => {
            up.set(1);
            register_stats(registry, &lanes);
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

type LaneGauges = Family<[(&'static str, &'static str); 1], Gauge>;

fn register_stats(registry: &mut Registry, lanes: &[LaneFigures]) {
    let set = |g: &Gauge, value: u64| {
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
    };
    let (length, pending, delayed, lag) = (
        LaneGauges::default(),
        LaneGauges::default(),
        LaneGauges::default(),
        LaneGauges::default(),
    );
    for f in lanes {
        let label = [("lane", f.lane.as_str())];
        set(&length.get_or_create(&label), f.stats.stream_len);
        set(&pending.get_or_create(&label), f.stats.pending);
        set(&delayed.get_or_create(&label), f.stats.delayed);
        if let Some(l) = f.lag {
            set(&lag.get_or_create(&label), l);
        }
    }
    registry.register(
        "queue_length",
        "Entries in the lane's jobs stream: waiting or in flight",
        length,
    );
    registry.register(
        "queue_pending",
        "Entries of the lane delivered to a worker and not yet acknowledged",
        pending,
    );
    registry.register(
        "queue_delayed",
        "Retries of the lane waiting for their backoff",
        delayed,
    );
    registry.register(
        "queue_lag",
        "Entries of the lane's jobs stream not yet delivered to the consumer group (absent \
         until a worker made the group)",
        lag,
    );
    // One dead stream for all lanes.
    if let Some(f) = lanes.first() {
        let dead = Gauge::<i64>::default();
        set(&dead, f.stats.dead);
        registry.register("queue_dead", "Jobs in the dead stream", dead);
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
    fn each_lane_has_its_series_and_lag_is_left_out_when_redis_did_not_give_it() {
        let stats = |stream_len, pending| QueueStats {
            stream_len,
            pending,
            delayed: 0,
            dead: 2,
        };
        let lanes = [
            LaneFigures {
                lane: Lane::Cpu,
                stats: stats(3, 1),
                lag: Some(7),
            },
            LaneFigures {
                lane: Lane::Gpu,
                stats: stats(5, 0),
                lag: None,
            },
        ];
        let mut registry = Registry::default();
        register_stats(&mut registry, &lanes);
        let text = text(&registry);
        for line in [
            "queue_length{lane=\"cpu\"} 3\n",
            "queue_length{lane=\"gpu\"} 5\n",
            "queue_pending{lane=\"cpu\"} 1\n",
            "queue_lag{lane=\"cpu\"} 7\n",
            "queue_dead 2\n",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(!text.contains("queue_lag{lane=\"gpu\"}"), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("queue_dead "))
                .count(),
            1,
            "{text}"
        );
    }
}
