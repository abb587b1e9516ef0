//! A rate-limit window kept in Redis, so that N instances allow the configured rate in
//! total: one sorted set per webhook (a member per admitted request, scored by Redis's own
//! clock), trimmed, counted and added to by one script in one round trip. Redis runs a
//! script alone, so the count is exact across instances.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::*;
use webhook_core::{BuildError, Rejection};

use crate::shared_redis::{SharedClient, command_options};

/// KEYS[1] the window; ARGV window (ms), max, a member unique to this request. Returns
/// `{1, 0}` when admitted, `{0, wait_ms}` when over the limit.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = window
  if oldest[2] then wait = tonumber(oldest[2]) + window - now end
  return {0, wait}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
";

/// How long a request waits for Redis before this instance decides alone.
const TIMEOUT: Duration = Duration::from_millis(500);
/// After Redis failed, requests are decided alone at once for this long; then one asks
/// Redis again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A webhook's window in Redis.
#[derive(Debug)]
pub(super) struct SharedWindow {
    client: SharedClient,
    prefix: String,
    /// This instance's part of every member (random), and a counter for the rest.
    instance: u64,
    next: AtomicU64,
    /// Redis failed last time: the fallback was announced, its end will be.
    degraded: AtomicBool,
    /// While Redis is failing: when to ask it again.
    retry_at: Mutex<Option<Instant>>,
}

impl SharedWindow {
    pub(super) fn new(url: &str, prefix: String) -> Result<Self, BuildError> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed)
            .map_err(|e| BuildError::key("redis_url", format!("no randomness: {e}")))?;
        Ok(Self {
            client: SharedClient::new(url, "rate_limit.redis_url", "rate_limit")?,
            prefix,
            instance: u64::from_le_bytes(seed),
            next: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            retry_at: Mutex::new(None),
        })
    }

    /// The decision for one request of `webhook_id`, or `None` when Redis cannot answer.
    pub(super) async fn admit(
        &self,
        webhook_id: &str,
        max: usize,
        window: Duration,
    ) -> Option<Result<(), Rejection>> {
        if self.degraded.load(Ordering::Relaxed) && !self.time_to_retry() {
            self.fell_back(webhook_id, "redis failed a moment ago");
            return None;
        }
        let key = format!("{}:{webhook_id}", self.prefix);
        let member = format!(
            "{:016x}-{}",
            self.instance,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let client = self.client.ready().await;
        let client = client.with_options(&command_options(TIMEOUT));
        let eval = client.eval(
            ADMIT,
            vec![key],
            vec![window_ms.to_string(), max.to_string(), member],
        );
        // (fred keeps a command while it reconnects: the bound is ours)
        let answer: Result<Vec<i64>, Error> = match tokio::time::timeout(TIMEOUT, eval).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::new(ErrorKind::Timeout, "no answer within 500 ms")),
        };
        match answer.as_deref() {
            Ok([admitted, wait_ms]) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        webhook = webhook_id,
                        "rate_limit: redis answers again; the limit is shared by every instance"
                    );
                }
                Some(if *admitted == 1 {
                    Ok(())
                } else {
                    let wait = Duration::from_millis(u64::try_from(*wait_ms).unwrap_or(0));
                    Err(Rejection::too_many_requests("rate_limited", wait))
                })
            }
            Ok(other) => {
                self.failed(webhook_id, &format!("unexpected reply {other:?}"));
                None
            }
            Err(err) => {
                self.failed(webhook_id, &err.to_string());
                None
            }
        }
    }

    /// Whether this request is the one that asks Redis again (then the next waits
    /// [`RETRY_AFTER`] more unless Redis answers).
    fn time_to_retry(&self) -> bool {
        let mut retry_at = match self.retry_at.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        match *retry_at {
            Some(at) if now < at => false,
            _ => {
                *retry_at = Some(now + RETRY_AFTER);
                true
            }
        }
    }

    /// Redis did not answer: decide alone, and alone at once until [`RETRY_AFTER`].
    fn failed(&self, webhook_id: &str, error: &str) {
        if let Ok(mut retry_at) = self.retry_at.lock() {
            *retry_at = Some(Instant::now() + RETRY_AFTER);
        }
        self.fell_back(webhook_id, error);
    }

    fn fell_back(&self, webhook_id: &str, error: &str) {
        metrics::counter!("webhook_rate_limit_fallback_total", "webhook" => webhook_id.to_owned())
            .increment(1);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                webhook = webhook_id,
                error,
                "rate_limit: redis cannot answer; falling back to this instance's own count until it does"
            );
        }
    }
}
