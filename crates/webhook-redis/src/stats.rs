//! `/stats` counters in Redis, shared by every instance that points at the same Redis and
//! kept across restarts. Requests are counted in memory and written every 500 ms in one
//! pipelined round trip (`INCRBY` per webhook: total, minute bucket, hour bucket, with
//! expiries); reads fetch the buckets with one `MGET` per webhook. When Redis is down,
//! counts wait in memory (and are written when it is back) and `/stats` reports an error —
//! webhooks keep flowing either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{Config as FredConfig, ReconnectPolicy};
use serde_json::{Map, Value};
use webhook_core::BoxFuture;
use webhook_core::stats::{HOUR_WINDOWS, MINUTE_WINDOWS, StatsStore};

const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Minute buckets live a little over an hour, hour buckets a little over 30 days.
const MINUTE_TTL: i64 = 3_900;
const HOUR_TTL: i64 = 31 * 24 * 3_600;
/// Minutes of counts kept per webhook while Redis is unreachable; beyond this, new minutes
/// are dropped rather than memory growing without bound.
const MAX_PENDING: usize = 100_000;

/// A [`StatsStore`] in Redis.
pub struct RedisStats {
    client: Client,
    prefix: String,
    /// webhook id → minute → count, not yet written.
    pending: Mutex<HashMap<String, HashMap<u64, u64>>>,
}

impl std::fmt::Debug for RedisStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStats")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn options() -> Options {
    Options {
        fail_fast: true,
        max_attempts: Some(1),
        timeout: Some(Duration::from_secs(2)),
        ..Options::default()
    }
}

impl RedisStats {
    /// Connect to `url` (`redis://[:password@]host:port/db`) and start the writer; keys
    /// start with `prefix` (e.g. `webhook-gateway:stats`). Must run inside a tokio runtime.
    pub async fn connect(url: &str, prefix: &str) -> Result<Arc<Self>, String> {
        let config =
            FredConfig::from_url(url).map_err(|e| format!("stats redis URL `{url}`: {e}"))?;
        let client = Builder::from_config(FredConfig {
            fail_fast: true,
            ..config
        })
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.max_command_attempts = 1;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .map_err(|e| format!("stats redis client: {e}"))?;
        let _task = client.connect();
        if tokio::time::timeout(Duration::from_secs(3), client.wait_for_connect())
            .await
            .is_err()
        {
            tracing::warn!("stats: redis not reachable at start-up; retrying in the background");
        }
        let stats = Arc::new(Self {
            client,
            prefix: prefix.to_owned(),
            pending: Mutex::new(HashMap::new()),
        });
        let writer = Arc::downgrade(&stats);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            loop {
                tick.tick().await;
                let Some(stats) = writer.upgrade() else {
                    return;
                };
                stats.flush().await;
            }
        });
        Ok(stats)
    }

    fn key(&self, id: &str, suffix: &str) -> String {
        format!("{}:{id}:{suffix}", self.prefix)
    }

    /// Write the counts gathered since the last flush; on failure keep them for the next.
    pub async fn flush(&self) {
        let batch: HashMap<String, HashMap<u64, u64>> = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        if batch.is_empty() {
            return;
        }
        let pipeline = self.client.with_options(&options()).pipeline();
        let mut queued = Ok(());
        let mut entries: Vec<(&str, u64, u64)> = Vec::new();
        for (id, minutes) in &batch {
            for (minute, count) in minutes {
                entries.push((id.as_str(), *minute, *count));
            }
        }
        for (id, minute, count) in entries {
            let count = i64::try_from(count).unwrap_or(i64::MAX);
            let minute_key = self.key(id, &format!("m:{minute}"));
            let hour_key = self.key(id, &format!("h:{}", minute / 60));
            for result in [
                pipeline
                    .incr_by::<(), _>(self.key(id, "total"), count)
                    .await,
                pipeline.incr_by::<(), _>(minute_key.as_str(), count).await,
                pipeline
                    .expire::<(), _>(minute_key.as_str(), MINUTE_TTL, None)
                    .await,
                pipeline.incr_by::<(), _>(hour_key.as_str(), count).await,
                pipeline
                    .expire::<(), _>(hour_key.as_str(), HOUR_TTL, None)
                    .await,
            ] {
                queued = queued.and(result);
            }
        }
        let sent: Result<(), Error> = match queued {
            Ok(()) => pipeline.all::<Vec<fred::types::Value>>().await.map(|_| ()),
            Err(err) => Err(err),
        };
        if let Err(err) = sent {
            tracing::warn!(error = %err, "stats: cannot write to redis; keeping the counts for later");
            let mut pending = match self.pending.lock() {
                Ok(pending) => pending,
                Err(poisoned) => poisoned.into_inner(),
            };
            for (id, minutes) in batch {
                let kept = pending.entry(id).or_default();
                for (minute, count) in minutes {
                    if kept.len() < MAX_PENDING {
                        *kept.entry(minute).or_insert(0) += count;
                    }
                }
            }
        }
    }

    async fn counts(&self, id: &str, now: u64) -> Result<Value, Error> {
        let minute = now / 60;
        let hour = now / 3_600;
        let minutes: u64 = MINUTE_WINDOWS.iter().map(|w| w.1).max().unwrap_or(60);
        let hours: u64 = HOUR_WINDOWS.iter().map(|w| w.1).max().unwrap_or(720);
        let mut keys = Vec::with_capacity((1 + minutes + hours) as usize);
        keys.push(self.key(id, "total"));
        keys.extend(
            (0..minutes).map(|back| self.key(id, &format!("m:{}", minute.saturating_sub(back)))),
        );
        keys.extend(
            (0..hours).map(|back| self.key(id, &format!("h:{}", hour.saturating_sub(back)))),
        );
        let values: Vec<Option<u64>> = self.client.with_options(&options()).mget(keys).await?;
        let at = |i: usize| values.get(i).copied().flatten().unwrap_or(0);
        let mut map = Map::new();
        map.insert("total".into(), at(0).into());
        let first_minute = 1;
        let first_hour = 1 + minutes as usize;
        for &(name, n) in MINUTE_WINDOWS {
            let sum: u64 = (0..n as usize).map(|back| at(first_minute + back)).sum();
            map.insert(name.into(), sum.into());
        }
        for &(name, n) in HOUR_WINDOWS {
            let sum: u64 = (0..n as usize).map(|back| at(first_hour + back)).sum();
            map.insert(name.into(), sum.into());
        }
        Ok(Value::Object(map))
    }
}

impl StatsStore for RedisStats {
    fn record(&self, webhook_id: &str, at: u64) {
        let mut pending = match self.pending.lock() {
            Ok(pending) => pending,
            Err(poisoned) => poisoned.into_inner(),
        };
        let minute = at / 60;
        if let Some(minutes) = pending.get_mut(webhook_id) {
            if minutes.len() < MAX_PENDING || minutes.contains_key(&minute) {
                *minutes.entry(minute).or_insert(0) += 1;
            }
        } else {
            pending.insert(webhook_id.to_owned(), HashMap::from([(minute, 1)]));
        }
    }

    fn snapshot<'a>(
        &'a self,
        webhook_ids: &'a [&'a str],
        now: u64,
    ) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            self.flush().await;
            let mut all = Map::new();
            for id in webhook_ids {
                let counts = self
                    .counts(id, now)
                    .await
                    .map_err(|e| format!("stats store (redis) unavailable: {e}"))?;
                all.insert((*id).to_owned(), counts);
            }
            Ok(Value::Object(all))
        })
    }
}
