//! Per-tenant request rate limits kept in Redis, so that every API replica charges the same
//! budget: one GCRA script (`scripts/rate_limit.lua`) on Redis's clock.

use std::time::Duration;

use super::{Queue, QueueError};

/// A limit: `per_minute` requests on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    /// One request's share of a minute, in µs.
    fn interval_us(self) -> u64 {
        60_000_000 / u64::from(self.per_minute.max(1))
    }
}

/// Whether a request may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Over the limit; the next request fits after this long.
    Limited(Duration),
}

impl Queue {
    /// Charges one request to `tenant` under `limit`.
    pub async fn take_rate(
        &self,
        tenant: &str,
        limit: RateLimit,
    ) -> Result<RateDecision, QueueError> {
        let mut c = self.conn().await?;
        let (allowed, wait_us): (i64, i64) = self
            .scripts
            .rate_limit
            .key(self.keys.rate(tenant))
            .arg(limit.interval_us())
            .arg(limit.burst.max(1))
            .invoke_async(&mut c)
            .await?;
        Ok(if allowed == 1 {
            RateDecision::Allowed
        } else {
            RateDecision::Limited(Duration::from_micros(wait_us.max(0).unsigned_abs()))
        })
    }
}
