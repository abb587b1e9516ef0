//! The operations around the request path: destination health, `/stats`, dead letters,
//! shutdown.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::{Pipeline, unix_secs};
use crate::spool::{DeadLetter, Spool, SpoolError};

/// The outcome of [`Pipeline::health`].
#[derive(Debug, Clone)]
pub struct Health {
    /// Every destination answered its health check.
    pub healthy: bool,
    /// `{"status": "healthy"|"unhealthy", "destinations": {id: [{module, status, error?}]}}`
    pub report: Value,
}

impl Pipeline {
    /// The local spool, when a webhook of this pipeline (or an earlier one) opened it
    /// (`None` with a shared spool).
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.outbox.as_ref().and_then(|o| o.store().local())
    }

    /// The dead letters (deliveries given up), oldest first; empty without a spool. With a
    /// shared spool: every instance's.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        match &self.outbox {
            Some(outbox) => outbox.dead_letters().await,
            None => Ok(Vec::new()),
        }
    }

    /// Deliver dead letter `id` again (spooled anew for its one destination, same request
    /// id); it leaves the dead letters.
    pub async fn replay_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        match &self.outbox {
            Some(outbox) => outbox.replay(id).await,
            None => Err(SpoolError::NoDeadLetter(id.to_owned())),
        }
    }

    /// Drop dead letter `id` for good (not delivered); its bytes leave the spool's quota.
    pub async fn delete_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        match &self.outbox {
            Some(outbox) => outbox.delete_dead_letter(id).await,
            None => Err(SpoolError::NoDeadLetter(id.to_owned())),
        }
    }

    /// Shutting down for good (not a reload): with a shared spool, hand what this instance
    /// has not delivered to the other instances at once (they would take it after the
    /// lease anyway).
    pub async fn leave_shared_spool(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.leave().await;
        }
    }

    /// The `/stats` answer: from the shared store when one is configured (an error when it
    /// cannot be read), else [`Pipeline::stats`]. `duplicates` always comes from this
    /// instance.
    pub async fn shared_stats(&self) -> Result<Value, String> {
        let Some(store) = &self.options.stats_store else {
            return Ok(self.stats());
        };
        let ids = self.webhook_ids();
        let mut shared = store.snapshot(&ids, unix_secs(SystemTime::now())).await?;
        let local = self.stats();
        if let (Value::Object(shared), Value::Object(local)) = (&mut shared, &local) {
            for (id, counts) in shared.iter_mut() {
                let (Value::Object(counts), Some(local)) = (counts, local.get(id)) else {
                    continue;
                };
                for key in ["duplicates", "filtered"] {
                    if let Some(value) = local.get(key) {
                        counts.insert(key.into(), value.clone());
                    }
                }
            }
        }
        Ok(shared)
    }

    /// Request counts per webhook in the original's shape:
    /// `{id: {total, minute, 5_minutes, 15_minutes, 30_minutes, hour, day, week, month}}`.
    pub fn stats(&self) -> Value {
        let now = unix_secs(SystemTime::now());
        let mut map = Map::new();
        for id in self.webhook_ids() {
            if let Some(webhook) = self.webhooks.get(id) {
                let snapshot = match webhook.stats.lock() {
                    Ok(stats) => stats.snapshot(now),
                    Err(poisoned) => poisoned.into_inner().snapshot(now),
                };
                map.insert(id.to_owned(), snapshot);
            }
        }
        Value::Object(map)
    }

    /// Ask every destination whether it is reachable (each within the health timeout).
    pub async fn health(&self) -> Health {
        let mut tasks = JoinSet::new();
        for (id, webhook) in &self.webhooks {
            for destination in &webhook.route.destinations {
                let id = Arc::clone(id);
                let module = Arc::clone(&destination.module);
                let limit = self.options.health_timeout;
                tasks.spawn(async move {
                    let result = match tokio::time::timeout(limit, module.health()).await {
                        Ok(result) => result.map_err(|err| err.chain()),
                        Err(_) => Err(format!("no answer within {}s", limit.as_secs_f64())),
                    };
                    (id, module.kind(), result)
                });
            }
        }
        let mut healthy = true;
        let mut per_webhook: Map<String, Value> = Map::new();
        while let Some(joined) = tasks.join_next().await {
            let (id, kind, result) = match joined {
                Ok(outcome) => outcome,
                Err(_) => {
                    healthy = false;
                    continue;
                }
            };
            let mut entry = Map::new();
            entry.insert("module".into(), kind.into());
            match result {
                Ok(()) => {
                    entry.insert("status".into(), "ok".into());
                }
                Err(message) => {
                    healthy = false;
                    entry.insert("status".into(), "error".into());
                    entry.insert("error".into(), message.into());
                }
            }
            if let Value::Array(list) = per_webhook
                .entry(id.to_string())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                list.push(Value::Object(entry));
            }
        }
        let mut report = Map::new();
        report.insert(
            "status".into(),
            if healthy { "healthy" } else { "unhealthy" }.into(),
        );
        report.insert("destinations".into(), Value::Object(per_webhook));
        Health {
            healthy,
            report: Value::Object(report),
        }
    }

    /// Flush and close every destination.
    pub async fn shutdown(&self) {
        for webhook in self.webhooks.values() {
            for destination in &webhook.route.destinations {
                destination.module.shutdown().await;
            }
        }
    }
}
