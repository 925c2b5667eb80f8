//! The one retry schedule of the project: workers retrying Redis/S3, the queue's job retries
//! and the `facecraft` client all back off the same way.

use std::time::Duration;

/// Delay before retry number `attempt` (1-based): `base × 2^(attempt − 1)`, capped at `max`,
/// then jittered uniformly over its upper half so that clients failing together do not retry
/// together. Never zero.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    // 2^20 × any sane base is past every cap; the shift cannot overflow.
    let exp = base_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(max_ms);
    Duration::from_millis((exp / 2 + fastrand::u64(0..=exp / 2)).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_doubling_and_is_capped_with_jitter_on_the_upper_half() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for _ in 0..200 {
            let ms = |n| backoff(base, max, n).as_millis();
            assert!((50..=100).contains(&ms(1)), "{}", ms(1));
            assert!((100..=200).contains(&ms(2)), "{}", ms(2));
            assert!((200..=400).contains(&ms(3)), "{}", ms(3));
            assert!((2500..=5000).contains(&ms(30)), "{}", ms(30));
            assert!((2500..=5000).contains(&ms(u32::MAX)));
        }
        assert_eq!(backoff(Duration::ZERO, max, 3), Duration::from_millis(1));
        // Attempt 0 is read as the first.
        assert!((50..=100).contains(&backoff(base, max, 0).as_millis()));
    }
}
