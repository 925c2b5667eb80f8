//! Per-tenant rate limits that hold across API replicas: the budget lives in Redis (one GCRA
//! script, `Queue::take_rate`). While Redis cannot answer, each process limits on its own
//! (governor's keyed GCRA, same quota) rather than letting every request through or refusing
//! them all; the switch is logged once each way and shown by `/metrics`.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use facecraft_shared::queue::{Queue, RateDecision, RateLimit};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// How long a request waits for Redis's decision before the local one is taken instead: a
/// stalled Redis must not add seconds to every request.
const REDIS_DECISION_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) struct Limiter {
    queue: Queue,
    limit: RateLimit,
    local: DefaultKeyedRateLimiter<String>,
    /// Whether the last decision was taken locally.
    degraded: AtomicBool,
    local_decisions: AtomicU64,
}

impl Limiter {
    /// `None` when `per_minute` is 0 (no limit).
    pub fn new(queue: Queue, per_minute: u32, burst: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Some(Self {
            queue,
            limit: RateLimit {
                per_minute: per_minute.get(),
                burst: burst.get(),
            },
            local: DefaultKeyedRateLimiter::dashmap(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            degraded: AtomicBool::new(false),
            local_decisions: AtomicU64::new(0),
        })
    }

    /// Charges one request to `tenant`; `Err` holds the seconds to wait (at least 1).
    pub async fn take(&self, tenant: &str) -> Result<(), u64> {
        let shared = tokio::time::timeout(
            REDIS_DECISION_TIMEOUT,
            self.queue.take_rate(tenant, self.limit),
        )
        .await;
        match shared {
            Ok(Ok(decision)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        "rate limit: redis answers again; the limit is shared by every replica"
                    );
                }
                match decision {
                    RateDecision::Allowed => Ok(()),
                    RateDecision::Limited(wait) => Err(whole_seconds(wait)),
                }
            }
            Ok(Err(e)) => {
                self.fall_back(&e.to_string());
                self.take_locally(tenant)
            }
            Err(_) => {
                self.fall_back("no answer within 500 ms");
                self.take_locally(tenant)
            }
        }
    }

    fn fall_back(&self, why: &str) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = why,
                "rate limit: redis cannot decide; each API process limits on its own until it can"
            );
        }
        self.local_decisions.fetch_add(1, Ordering::Relaxed);
    }

    fn take_locally(&self, tenant: &str) -> Result<(), u64> {
        // The map only grows by configured tenants, but forget idle ones anyway.
        if self.local.len() > 1024 {
            self.local.retain_recent();
        }
        let key = tenant.to_owned();
        self.local.check_key(&key).map_err(|not_until| {
            whole_seconds(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// Whether the last decision was local (Redis could not answer).
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Decisions taken locally since start.
    pub fn local_decisions(&self) -> u64 {
        self.local_decisions.load(Ordering::Relaxed)
    }
}

/// `Retry-After` in whole seconds, rounded up, never 0.
fn whole_seconds(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }
}
