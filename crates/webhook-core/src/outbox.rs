//! Background delivery for `ack: persisted` and `ack: accepted` webhooks: each destination of
//! an entry is delivered and retried on its own (exponential backoff with full jitter,
//! honouring `Retry-After`), with a concurrency limit per destination, so a slow or dead
//! destination never holds up the others. Progress goes to the spool, so a restart resumes
//! where it stopped; what exhausts its attempts or fails permanently becomes a dead letter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use uuid::Uuid;

use crate::config::{ChainConfig, Execution, RetryConfig};
use crate::engine::Destination;
use crate::spool::record::EntryRecord;
use crate::spool::{DeadLetter, Spool, SpoolError};
use crate::{DataType, Delivery};

/// The longest `Retry-After` of a destination that is honoured as given.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The destinations of one webhook as the delivery workers see them.
pub(crate) struct Route {
    pub(crate) destinations: Vec<Destination>,
    pub(crate) chain: ChainConfig,
}

/// Background delivery state shared by every pipeline built from one server's configs.
pub(crate) struct Outbox {
    spool: Arc<Spool>,
    routes: RwLock<Arc<HashMap<Arc<str>, Arc<Route>>>>,
    resumed: AtomicBool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("spool", &self.spool)
            .finish_non_exhaustive()
    }
}

/// One entry being delivered: from the spool (`spooled`) or only in memory (`accepted`).
#[derive(Clone)]
struct Job {
    entry: Arc<EntryRecord>,
    spooled: bool,
}

impl Outbox {
    pub(crate) fn new(spool: Arc<Spool>) -> Arc<Self> {
        Arc::new(Self {
            spool,
            routes: RwLock::new(Arc::new(HashMap::new())),
            resumed: AtomicBool::new(false),
        })
    }

    pub(crate) fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Make `routes` the destinations used from now on; the first time, resume what the
    /// spool recovered.
    pub(crate) fn install(self: &Arc<Self>, routes: HashMap<Arc<str>, Arc<Route>>) {
        match self.routes.write() {
            Ok(mut current) => *current = Arc::new(routes),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(routes),
        }
        if !self.resumed.swap(true, Ordering::AcqRel) {
            let pending = self.spool.pending();
            if !pending.is_empty() {
                tracing::info!(
                    entries = pending.len(),
                    "resuming delivery of spooled webhooks"
                );
            }
            for p in pending {
                let job = Job {
                    entry: p.entry,
                    spooled: true,
                };
                tokio::spawn(Arc::clone(self).run(job, p.done, p.attempts, None));
            }
        }
    }

    fn route(&self, webhook: &str) -> Option<Arc<Route>> {
        let routes = match self.routes.read() {
            Ok(routes) => Arc::clone(&routes),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        routes.get(webhook).cloned()
    }

    /// Take a request: write it to the spool first when `durable`, then deliver it in the
    /// background to every destination of `route`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn accept(
        self: &Arc<Self>,
        route: &Arc<Route>,
        webhook_id: Arc<str>,
        request_id: Uuid,
        received_at: SystemTime,
        data_type: DataType,
        headers: Arc<HeaderMap>,
        body: Bytes,
        durable: bool,
    ) -> Result<(), SpoolError> {
        let count = route.destinations.len().min(32);
        let targets = if count == 32 {
            u32::MAX
        } else {
            (1u32 << count) - 1
        };
        let entry = if durable {
            self.spool
                .append(
                    request_id,
                    webhook_id,
                    received_at,
                    data_type,
                    targets,
                    headers,
                    body,
                )
                .await?
        } else {
            Arc::new(EntryRecord {
                seq: 0,
                request_id,
                received_at,
                data_type,
                targets,
                done: 0,
                attempts: vec![0; count],
                webhook_id,
                headers,
                body,
            })
        };
        let attempts = entry.attempts.clone();
        let job = Job {
            entry,
            spooled: durable,
        };
        tokio::spawn(Arc::clone(self).run(job, 0, attempts, Some(Arc::clone(route))));
        Ok(())
    }

    /// Re-drive dead letter `id`: spool it again for its one destination and deliver it.
    pub(crate) async fn replay(self: &Arc<Self>, id: &str) -> Result<DeadLetter, SpoolError> {
        let spool = Arc::clone(&self.spool);
        let owned = id.to_owned();
        let (letter, entry) = tokio::task::spawn_blocking(move || spool.read_dead_letter(&owned))
            .await
            .map_err(|_| SpoolError::Closed)??;
        let spooled = self.spool.respool(entry).await?;
        let spool = Arc::clone(&self.spool);
        let owned = id.to_owned();
        tokio::task::spawn_blocking(move || spool.remove_dead_letter(&owned))
            .await
            .map_err(|_| SpoolError::Closed)??;
        tracing::info!(id, webhook = %spooled.webhook_id, "dead letter replayed");
        let attempts = spooled.attempts.clone();
        let job = Job {
            entry: spooled,
            spooled: true,
        };
        tokio::spawn(Arc::clone(self).run(job, 0, attempts, None));
        Ok(letter)
    }

    /// Deliver `job` to each target not yet done, as the webhook's chain says.
    /// `route` is the webhook's current route when the caller has it at hand.
    async fn run(
        self: Arc<Self>,
        job: Job,
        done: u32,
        attempts: Vec<u32>,
        route: Option<Arc<Route>>,
    ) {
        let pending = job.entry.targets & !done;
        let targets = (0u8..32).filter(move |&i| pending & (1 << i) != 0);
        let attempts_of = |i: u8| attempts.get(usize::from(i)).copied().unwrap_or(0);
        let Some(route) = route.or_else(|| self.route(&job.entry.webhook_id)) else {
            for i in targets {
                self.give_up(
                    &job,
                    i,
                    "?",
                    attempts_of(i),
                    "the webhook is no longer configured",
                )
                .await;
            }
            return;
        };
        match route.chain.execution {
            Execution::Parallel if pending.count_ones() > 1 => {
                for i in targets {
                    let outbox = Arc::clone(&self);
                    let job = job.clone();
                    let before = attempts_of(i);
                    let route = Arc::clone(&route);
                    tokio::spawn(async move {
                        outbox.run_destination(&job, i, before, Some(route)).await;
                    });
                }
            }
            _ => {
                let mut failed: Option<u8> = None;
                for i in targets {
                    if let Some(first) = failed {
                        self.give_up(
                            &job,
                            i,
                            "?",
                            attempts_of(i),
                            &format!("not attempted: destination {first} of the chain failed"),
                        )
                        .await;
                        continue;
                    }
                    let delivered = self
                        .run_destination(&job, i, attempts_of(i), Some(Arc::clone(&route)))
                        .await;
                    if !delivered && !route.chain.continue_on_error {
                        failed = Some(i);
                    }
                }
            }
        }
    }

    /// Deliver to destination `i` until it confirms or is given up; true when delivered.
    async fn run_destination(
        &self,
        job: &Job,
        i: u8,
        mut attempts: u32,
        mut route: Option<Arc<Route>>,
    ) -> bool {
        let entry = &job.entry;
        let delivery = Delivery {
            webhook_id: Arc::clone(&entry.webhook_id),
            request_id: entry.request_id,
            headers: Arc::clone(&entry.headers),
            body: entry.body.clone(),
            received_at: entry.received_at,
            data_type: entry.data_type,
        };
        loop {
            // The current config's destination: a reload may have replaced it.
            let Some(route) = route.take().or_else(|| self.route(&entry.webhook_id)) else {
                self.give_up(job, i, "?", attempts, "the webhook is no longer configured")
                    .await;
                return false;
            };
            let Some(destination) = route.destinations.get(usize::from(i)) else {
                self.give_up(
                    job,
                    i,
                    "?",
                    attempts,
                    "the destination is no longer configured",
                )
                .await;
                return false;
            };
            let deadline = Duration::from_secs_f64(route.chain.timeout);
            let result = {
                let _permit = destination.limit.acquire().await;
                destination.metrics.in_flight.increment(1.0);
                let started = Instant::now();
                let result =
                    match tokio::time::timeout(deadline, destination.module.deliver(&delivery))
                        .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(crate::ModuleError::retryable(format!(
                            "delivery did not finish within {}s",
                            route.chain.timeout
                        ))),
                    };
                destination.metrics.in_flight.decrement(1.0);
                destination.metrics.record(
                    result.as_ref().map(|_| ()).map_err(|e| e.is_retryable()),
                    started.elapsed(),
                );
                result
            };
            let err = match result {
                Ok(()) => {
                    if job.spooled {
                        self.spool.done(entry.seq, i);
                    }
                    return true;
                }
                Err(err) => err,
            };
            attempts += 1;
            if job.spooled {
                self.spool.attempt(entry.seq, i, attempts);
            }
            let retry = &destination.retry;
            tracing::warn!(
                webhook = %entry.webhook_id,
                request_id = %entry.request_id,
                module = destination.module.kind(),
                destination = i,
                class = err.class().as_str(),
                attempt = attempts,
                error = %err.chain(),
                "background delivery failed"
            );
            if !err.is_retryable() || attempts >= retry.max_attempts.max(1) {
                let module = destination.module.kind();
                let reason = err.chain();
                destination.metrics.dead_lettered.increment(1);
                self.give_up(job, i, module, attempts, &reason).await;
                return false;
            }
            let mut delay = backoff(retry, attempts);
            if let Some(after) = err.retry_after() {
                delay = delay.max(after.min(MAX_RETRY_AFTER));
            }
            destination.metrics.retried.increment(1);
            tokio::time::sleep(delay).await;
        }
    }

    /// Keep entry `job` for destination `i` as a dead letter and mark it done in the spool.
    /// If the dead letter cannot be written, the entry stays pending in the spool (it is
    /// tried again after a restart) rather than being lost.
    async fn give_up(&self, job: &Job, i: u8, module: &str, attempts: u32, error: &str) {
        let spool = Arc::clone(&self.spool);
        let entry = Arc::clone(&job.entry);
        let (module, error) = (module.to_owned(), error.to_owned());
        let written = tokio::task::spawn_blocking(move || {
            spool.write_dead_letter(&entry, i, &module, attempts, &error)
        })
        .await;
        match written {
            Ok(Ok(letter)) => {
                tracing::error!(
                    webhook = %letter.webhook,
                    request_id = %letter.request_id,
                    dead_letter = %letter.id,
                    attempts,
                    error = %letter.error,
                    "delivery given up: kept as a dead letter"
                );
                if job.spooled {
                    self.spool.done(job.entry.seq, i);
                }
            }
            Ok(Err(err)) => tracing::error!(
                webhook = %job.entry.webhook_id,
                request_id = %job.entry.request_id,
                error = %err,
                "cannot write a dead letter; the entry stays in the spool"
            ),
            Err(err) => tracing::error!(error = %err, "dead-letter task failed"),
        }
    }
}

/// Full jitter: a random delay between 0 and the exponential backoff for this attempt
/// (`initial_delay · backoff_multiplier^(attempt-1)`, capped at `max_delay`).
pub(crate) fn backoff(retry: &RetryConfig, attempt: u32) -> Duration {
    let cap = retry.delay(attempt);
    cap.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_exponential_cap() {
        let retry = RetryConfig {
            enabled: true,
            max_attempts: 10,
            initial_delay: 0.1,
            max_delay: 1.0,
            backoff_multiplier: 2.0,
        };
        for attempt in 1..8 {
            let cap = retry.delay(attempt);
            let samples: Vec<Duration> = (0..200).map(|_| backoff(&retry, attempt)).collect();
            assert!(samples.iter().all(|d| *d <= cap));
            // jittered: not all the same, and spread over the range
            let max = samples.iter().max().copied().unwrap_or_default();
            let min = samples.iter().min().copied().unwrap_or_default();
            assert!(
                max > cap.mul_f64(0.7) && min < cap.mul_f64(0.3),
                "{min:?}..{max:?} of {cap:?}"
            );
        }
        assert_eq!(retry.delay(1), Duration::from_millis(100));
        assert_eq!(retry.delay(3), Duration::from_millis(400));
        assert_eq!(retry.delay(9), Duration::from_secs(1));
    }
}
