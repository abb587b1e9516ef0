//! The one retry policy: how many attempts a destination gets and how long to wait between
//! them, the same for every ack mode (README, "Retries and timeouts").

use std::time::Duration;

use crate::config::{AckMode, RetryConfig};

/// The longest `Retry-After` of a destination that is honoured as given.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A webhook's `retry` keys, resolved for its ack mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Attempts in all, the first included (1 when retries are off).
    attempts: u32,
    initial: f64,
    max: f64,
    multiplier: f64,
}

impl RetryPolicy {
    /// `retry.enabled` when set; when not set, retries are on for `persisted`/`accepted`
    /// (the spool's purpose) and off for `delivered` (the sender retries).
    pub(crate) fn new(config: &RetryConfig, ack: AckMode) -> Self {
        let enabled = config.enabled.unwrap_or(ack != AckMode::Delivered);
        Self {
            attempts: if enabled {
                config.max_attempts.max(1)
            } else {
                1
            },
            initial: config.initial_delay,
            max: config.max_delay,
            multiplier: config.backoff_multiplier,
        }
    }

    /// Attempts to make in all, the first included.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The un-jittered delay after failed attempt number `failed` (1-based):
    /// `initial_delay · backoff_multiplier^(failed-1)`, at most `max_delay`.
    pub(crate) fn backoff(&self, failed: u32) -> Duration {
        let exp = i32::try_from(failed.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = (self.initial * self.multiplier.powi(exp)).min(self.max);
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The wait after failed attempt number `failed`: the backoff with equal jitter (a
    /// random point in its upper half), and at least the destination's `Retry-After`
    /// (itself at most [`MAX_RETRY_AFTER`]).
    pub(crate) fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        let cap = self.backoff(failed);
        let jittered = cap.mul_f64(0.5 + 0.5 * fastrand::f64());
        match retry_after {
            Some(after) => jittered.max(after.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(enabled: Option<bool>) -> RetryConfig {
        RetryConfig {
            enabled,
            max_attempts: 10,
            initial_delay: 0.1,
            max_delay: 1.0,
            backoff_multiplier: 2.0,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn enabled_defaults_by_ack_mode_and_is_honoured_when_set() {
        assert_eq!(
            RetryPolicy::new(&config(None), AckMode::Delivered).attempts(),
            1
        );
        assert_eq!(
            RetryPolicy::new(&config(None), AckMode::Persisted).attempts(),
            10
        );
        assert_eq!(
            RetryPolicy::new(&config(None), AckMode::Accepted).attempts(),
            10
        );
        for ack in [AckMode::Delivered, AckMode::Persisted, AckMode::Accepted] {
            assert_eq!(RetryPolicy::new(&config(Some(false)), ack).attempts(), 1);
            assert_eq!(RetryPolicy::new(&config(Some(true)), ack).attempts(), 10);
        }
    }

    #[test]
    fn equal_jitter_stays_in_the_upper_half_of_the_exponential_cap() {
        let retry = RetryPolicy::new(&config(Some(true)), AckMode::Persisted);
        assert_eq!(retry.backoff(1), Duration::from_millis(100));
        assert_eq!(retry.backoff(3), Duration::from_millis(400));
        assert_eq!(retry.backoff(9), Duration::from_secs(1));
        for failed in 1..8 {
            let cap = retry.backoff(failed);
            let samples: Vec<Duration> = (0..200).map(|_| retry.delay(failed, None)).collect();
            assert!(samples.iter().all(|d| *d <= cap && *d >= cap / 2));
            let max = samples.iter().max().copied().unwrap_or_default();
            let min = samples.iter().min().copied().unwrap_or_default();
            assert!(
                max > cap.mul_f64(0.85) && min < cap.mul_f64(0.65),
                "{min:?}..{max:?} of {cap:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor_with_a_cap() {
        let retry = RetryPolicy::new(&config(Some(true)), AckMode::Delivered);
        let after = Duration::from_secs(5);
        assert_eq!(retry.delay(1, Some(after)), after);
        // shorter than the backoff: the backoff wins
        let short = Duration::from_millis(1);
        assert!(retry.delay(1, Some(short)) >= Duration::from_millis(50));
        assert_eq!(
            retry.delay(1, Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
    }
}
