//! `/health` without amplification: the destinations' health checks run at most once per
//! interval, by one request at a time, and every caller in between gets the cached result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;

use crate::live::LivePipeline;

/// How long a health result is served before the checks run again, by default.
pub const HEALTH_CACHE_TTL: Duration = Duration::from_secs(5);

/// One health result: whether every destination answered, and the detailed report.
#[derive(Debug)]
pub struct CachedHealth {
    /// Every destination answered its health check.
    pub healthy: bool,
    /// The detailed JSON report (for callers with the ops token).
    pub report: Bytes,
    taken: Instant,
}

/// The last health result and the lock that makes refreshing it single-flight.
#[derive(Debug, Default)]
pub struct HealthCache {
    last: ArcSwapOption<CachedHealth>,
    refreshing: tokio::sync::Mutex<()>,
}

impl HealthCache {
    /// The current result: cached when younger than `ttl`, else checked again (by one
    /// caller; the others wait for its result).
    pub async fn get(&self, live: &LivePipeline, ttl: Duration) -> Arc<CachedHealth> {
        if let Some(fresh) = self.fresh(ttl) {
            return fresh;
        }
        let _refreshing = self.refreshing.lock().await;
        if let Some(fresh) = self.fresh(ttl) {
            return fresh;
        }
        let health = live.current().health().await;
        let result = Arc::new(CachedHealth {
            healthy: health.healthy,
            report: Bytes::from(health.report.to_string()),
            taken: Instant::now(),
        });
        self.last.store(Some(Arc::clone(&result)));
        result
    }

    fn fresh(&self, ttl: Duration) -> Option<Arc<CachedHealth>> {
        self.last.load_full().filter(|h| h.taken.elapsed() < ttl)
    }

    /// Forget the cached result (after a reload: other destinations).
    pub fn clear(&self) {
        self.last.store(None);
    }
}
