//! `rate_limit`: a sliding window per webhook, in memory or shared by every instance
//! through Redis ([`shared`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use webhook_core::config::de;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

#[cfg(feature = "redis")]
mod shared;

/// The `rate_limit` key of a webhook entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `false` switches the limit off (the original's key; default `true`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Requests allowed per window (default 100); `0` refuses every request, as in the
    /// original.
    #[serde(default = "default_max", deserialize_with = "de::number")]
    pub max_requests: u32,
    /// Length of the sliding window in seconds (default 60).
    #[serde(default = "default_window", deserialize_with = "de::number")]
    pub window_seconds: u64,
    /// Count in Redis (`redis://[:password@]host:port/db`), so that every instance using
    /// it allows `max_requests` in total (feature `redis`); default: the server's
    /// `--shared-redis-url`, else in memory per instance. When Redis cannot answer, each
    /// instance falls back to its own count (logged, and counted in
    /// `webhook_rate_limit_fallback_total`).
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (default `webhook-gateway:rate`).
    #[serde(default)]
    pub key_prefix: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

fn default_max() -> u32 {
    100
}

fn default_window() -> u64 {
    60
}

/// The most requests a window may hold; the log keeps one `Instant` per request.
const MAX_REQUESTS_LIMIT: u32 = 1_000_000;

/// `rate_limit`: at most `max_requests` accepted requests per webhook in any sliding window
/// of `window_seconds`, counted by this instance or, with a Redis, by all instances
/// together. Over the limit: 429 with `Retry-After` (when the oldest request in the window
/// leaves it).
///
/// It runs after the authentication validators, so only authenticated requests count.
#[derive(Debug)]
pub struct RateLimit {
    max_requests: usize,
    window: Duration,
    /// This instance's own count: the limit itself, or the fallback of a shared one.
    log: Mutex<VecDeque<Instant>>,
    #[cfg(feature = "redis")]
    shared: Option<shared::SharedWindow>,
}

impl Validator for RateLimit {
    const KEY: &'static str = "rate_limit";
    type Config = RateLimitConfig;

    fn enabled(config: &RateLimitConfig) -> bool {
        config.enabled
    }

    fn build(config: RateLimitConfig) -> Result<Self, BuildError> {
        if config.max_requests > MAX_REQUESTS_LIMIT {
            return Err(BuildError::key(
                "max_requests",
                format!("must be between 0 and {MAX_REQUESTS_LIMIT}"),
            ));
        }
        if !(1..=86_400 * 31).contains(&config.window_seconds) {
            return Err(BuildError::key(
                "window_seconds",
                "must be between 1 and 2678400 (31 days)",
            ));
        }
        let shared = crate::shared_redis::url_for(config.redis_url.as_ref());
        #[cfg(not(feature = "redis"))]
        if shared.is_some() {
            return Err(BuildError::key(
                "redis_url",
                "this build has no Redis support; rebuild with `--features redis`",
            ));
        }
        Ok(Self {
            max_requests: config.max_requests as usize,
            window: Duration::from_secs(config.window_seconds),
            log: Mutex::new(VecDeque::new()),
            #[cfg(feature = "redis")]
            shared: shared
                .map(|url| {
                    shared::SharedWindow::new(
                        url,
                        config
                            .key_prefix
                            .clone()
                            .unwrap_or_else(|| "webhook-gateway:rate".to_owned()),
                    )
                })
                .transpose()?,
        })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared
            && self.max_requests > 0
        {
            return Check::Pending(Box::pin(async move {
                match shared
                    .admit(request.webhook_id, self.max_requests, self.window)
                    .await
                {
                    Some(decision) => decision.map(|()| None),
                    // Redis could not answer: this instance's own count decides
                    None => self.admit(Instant::now()).map(|()| None),
                }
            }));
        }
        let _ = request;
        self.admit(Instant::now()).into()
    }
}

impl RateLimit {
    fn admit(&self, now: Instant) -> Result<(), Rejection> {
        let mut log = match self.log.lock() {
            Ok(log) => log,
            Err(poisoned) => poisoned.into_inner(),
        };
        while log
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.window)
        {
            log.pop_front();
        }
        if log.len() >= self.max_requests {
            let oldest = log.front().copied().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(Rejection::too_many_requests("rate_limited", wait));
        }
        log.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window() {
        let v = RateLimit::build(RateLimitConfig {
            enabled: true,
            max_requests: 3,
            window_seconds: 10,
            redis_url: None,
            key_prefix: None,
        })
        .unwrap();
        let t0 = Instant::now();
        assert!(v.admit(t0).is_ok());
        assert!(v.admit(t0 + Duration::from_secs(4)).is_ok());
        assert!(v.admit(t0 + Duration::from_secs(5)).is_ok());
        let err = v.admit(t0 + Duration::from_secs(6)).unwrap_err();
        assert_eq!(err.retry_after, Some(Duration::from_secs(4)));
        // the first request leaves the window at t0+10
        assert!(v.admit(t0 + Duration::from_secs(10)).is_ok());
        assert!(v.admit(t0 + Duration::from_secs(11)).is_err());
        assert!(v.admit(t0 + Duration::from_secs(14)).is_ok());
    }

    #[test]
    fn bounds() {
        let cfg = |max_requests, window_seconds| RateLimitConfig {
            enabled: true,
            max_requests,
            window_seconds,
            redis_url: None,
            key_prefix: None,
        };
        assert_eq!(
            RateLimit::build(cfg(MAX_REQUESTS_LIMIT + 1, 60))
                .unwrap_err()
                .key,
            "max_requests"
        );
        // 0: every request refused, as the original does
        let closed = RateLimit::build(cfg(0, 60)).unwrap();
        assert!(closed.admit(Instant::now()).is_err());
        assert_eq!(
            RateLimit::build(cfg(5, 0)).unwrap_err().key,
            "window_seconds"
        );
    }
}
