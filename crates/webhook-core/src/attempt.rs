//! The one delivery path: [`run_chain`] hands a [`Delivery`] to the destinations of a
//! webhook's chain and [`attempt_until_settled`] is the one attempt loop each of them runs
//! through. Every ack mode uses them: with `delivered` the sender waits (under a deadline),
//! with `persisted`/`accepted` the outbox runs them in the background. What differs is said
//! by the caller's [`Progress`] (record in the spool, write a dead letter, or collect the
//! worst failure for the answer) and [`Routes`] (the route the request came in with, or the
//! current configuration's after a reload).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{ChainConfig, Execution};
use crate::history::{AttemptRecord, AttemptState, HistoryEvent};
use crate::metrics::DestinationMetrics;
use crate::retry::RetryPolicy;
use crate::{Delivery, DynModule, ErrorClass, ModuleError};

/// One destination of a webhook, built and connected.
pub(crate) struct Destination {
    pub(crate) module: Arc<dyn DynModule>,
    pub(crate) retry: RetryPolicy,
    pub(crate) metrics: Arc<DestinationMetrics>,
    /// The webhook's data type and the plan's fingerprint: equal means "same destination".
    pub(crate) fingerprint: Arc<str>,
    /// Most deliveries to this destination in flight at once.
    pub(crate) limit: Arc<tokio::sync::Semaphore>,
    /// Routing (a chain item's `filter`): requests that do not match skip this destination.
    pub(crate) filter: Option<Arc<crate::filter::Filter>>,
    /// `transform`: what this destination gets instead of the request as received.
    pub(crate) transform: Option<crate::transform::DestinationTransform>,
}

/// The destinations of one webhook and how its chain runs.
pub(crate) struct Route {
    pub(crate) destinations: Vec<Destination>,
    pub(crate) chain: ChainConfig,
    /// Where each attempt is recorded (the request history), if anywhere.
    pub(crate) history: Option<Arc<dyn crate::history::HistorySink>>,
}

impl Route {
    /// Bit i set for each destination i (a chain has at most 20).
    pub(crate) fn all_targets(&self) -> u32 {
        match self.destinations.len() {
            n @ 0..32 => (1u32 << n) - 1,
            _ => u32::MAX,
        }
    }

    /// Whether a destination has a routing filter (then [`Route::targets_for`] needs the
    /// filter input).
    pub(crate) fn routes_by_filter(&self) -> bool {
        self.destinations.iter().any(|d| d.filter.is_some())
    }

    /// The destinations `input` goes to: all but those whose filter it does not match
    /// (each skip is counted).
    pub(crate) fn targets_for(&self, input: &serde_json::Value) -> u32 {
        let mut targets = self.all_targets();
        for (i, destination) in self.destinations.iter().enumerate().take(32) {
            if let Some(filter) = &destination.filter
                && !filter.matches(input)
            {
                targets &= !(1u32 << i);
                destination.metrics.skipped.increment(1);
            }
        }
        targets
    }
}

/// Where each attempt finds its destination.
pub(crate) trait Routes: Sync {
    /// The route of `webhook` to use for the next attempt; `None` when it is gone.
    fn current(&self, webhook: &str) -> Option<Arc<Route>>;
}

/// A fixed route: the one the request came in with.
impl Routes for Arc<Route> {
    fn current(&self, _webhook: &str) -> Option<Arc<Route>> {
        Some(Arc::clone(self))
    }
}

/// A destination that was given up for this delivery.
#[derive(Debug)]
pub(crate) struct GiveUp {
    /// Its index in the chain.
    pub(crate) index: u8,
    /// Its kind (`"?"` when it is no longer configured).
    pub(crate) module: &'static str,
    /// Failed attempts made, in all.
    pub(crate) attempts: u32,
    /// The last failure (or why it was not attempted).
    pub(crate) error: ModuleError,
}

/// What the caller does as a delivery goes on.
pub(crate) trait Progress: Sync {
    /// Destination `index` confirmed.
    fn delivered(&self, index: u8);
    /// Destination `index` failed; `attempts` failed attempts so far.
    fn failed(&self, index: u8, attempts: u32);
    /// Destination `index` is given up (no attempt left, permanent failure, gone).
    fn gave_up(&self, give_up: GiveUp) -> impl Future<Output = ()> + Send;
}

/// One delivery of one request.
pub(crate) struct Job<'a> {
    pub(crate) delivery: &'a Delivery,
    /// Bit i set: destination i still has to confirm.
    pub(crate) pending: u32,
    /// Failed attempts so far per destination (from the spool after a restart).
    pub(crate) attempts: &'a [u32],
    /// The sender waits until then at most (`ack: delivered`).
    pub(crate) deadline: Option<Instant>,
}

impl Job<'_> {
    fn targets(&self) -> impl Iterator<Item = u8> + use<> {
        let pending = self.pending;
        (0u8..32).filter(move |&i| pending & (1 << i) != 0)
    }

    fn attempts_of(&self, index: u8) -> u32 {
        self.attempts.get(usize::from(index)).copied().unwrap_or(0)
    }
}

/// Deliver `job` to each pending destination as the webhook's chain says: in parallel, or
/// one after the other (after a failure, the rest are given up as not attempted unless
/// `continue_on_error`).
pub(crate) async fn run_chain(routes: &impl Routes, job: &Job<'_>, progress: &impl Progress) {
    let webhook = &job.delivery.webhook_id;
    let Some(route) = routes.current(webhook) else {
        for index in job.targets() {
            progress
                .gave_up(gone(index, job.attempts_of(index), "webhook"))
                .await;
        }
        return;
    };
    match route.chain.execution {
        Execution::Parallel if job.pending.count_ones() > 1 => {
            let all = job.targets().map(|index| async move {
                if let Err(give_up) = attempt_until_settled(routes, job, index, progress).await {
                    progress.gave_up(give_up).await;
                } else {
                    progress.delivered(index);
                }
            });
            futures_util::future::join_all(all).await;
        }
        _ => {
            let mut failed: Option<u8> = None;
            for index in job.targets() {
                if let Some(first) = failed {
                    let error = ModuleError::permanent(format!(
                        "not attempted: destination {first} of the chain failed"
                    ));
                    if let Some(destination) = route.destinations.get(usize::from(index)) {
                        let now = SystemTime::now();
                        record(
                            &route,
                            job.delivery,
                            index,
                            destination,
                            0,
                            now,
                            Duration::ZERO,
                            Some(&error),
                            None,
                        );
                    }
                    progress
                        .gave_up(GiveUp {
                            index,
                            module: "?",
                            attempts: job.attempts_of(index),
                            error,
                        })
                        .await;
                    continue;
                }
                match attempt_until_settled(routes, job, index, progress).await {
                    Ok(()) => progress.delivered(index),
                    Err(give_up) => {
                        progress.gave_up(give_up).await;
                        if !route.chain.continue_on_error {
                            failed = Some(index);
                        }
                    }
                }
            }
        }
    }
}

/// The one attempt loop: deliver to destination `index` until it confirms or is given up.
/// Each attempt uses the current route's destination, is bounded by `chain-config.timeout`
/// (and the job's deadline) and waits its turn under the destination's concurrency limit;
/// a retryable failure is retried after the retry policy's delay while attempts remain and
/// the deadline leaves room for the wait.
async fn attempt_until_settled(
    routes: &impl Routes,
    job: &Job<'_>,
    index: u8,
    progress: &impl Progress,
) -> Result<(), GiveUp> {
    let delivery = job.delivery;
    let mut attempts = job.attempts_of(index);
    loop {
        let Some(route) = routes.current(&delivery.webhook_id) else {
            return Err(gone(index, attempts, "webhook"));
        };
        let Some(destination) = route.destinations.get(usize::from(index)) else {
            return Err(gone(index, attempts, "destination"));
        };
        // A transform runs on the request as received (as spooled), at every attempt:
        // the same bytes give the same output, on a retry and after a restart.
        let transformed;
        let delivery = match &destination.transform {
            None => delivery,
            Some(transform) => match transform_for(destination, transform, delivery).await {
                Ok(Some(output)) => {
                    transformed = output;
                    &transformed
                }
                Ok(None) => {
                    destination.metrics.skipped.increment(1);
                    tracing::debug!(
                        webhook = %delivery.webhook_id,
                        request_id = %delivery.request_id,
                        destination = index,
                        "the transform gave null: destination skipped"
                    );
                    return Ok(());
                }
                Err(error) => {
                    let at = SystemTime::now();
                    record(
                        &route,
                        delivery,
                        index,
                        destination,
                        attempts + 1,
                        at,
                        Duration::ZERO,
                        Some(&error),
                        None,
                    );
                    return Err(GiveUp {
                        index,
                        module: destination.module.kind(),
                        attempts: attempts + 1,
                        error,
                    });
                }
            },
        };
        let timeout = Duration::from_secs_f64(route.chain.timeout);
        let limit = match job.deadline {
            Some(deadline) => timeout.min(deadline.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        let at = SystemTime::now();
        let started = Instant::now();
        let result = attempt(destination, delivery, limit, route.chain.timeout).await;
        let err = match result {
            Ok(()) => {
                record(
                    &route,
                    delivery,
                    index,
                    destination,
                    attempts + 1,
                    at,
                    started.elapsed(),
                    None,
                    None,
                );
                return Ok(());
            }
            Err(err) => err,
        };
        let took = started.elapsed();
        attempts += 1;
        progress.failed(index, attempts);
        tracing::warn!(
            webhook = %delivery.webhook_id,
            request_id = %delivery.request_id,
            module = destination.module.kind(),
            destination = index,
            class = err.class().as_str(),
            attempt = attempts,
            error = %err.chain(),
            "delivery attempt failed"
        );
        let give_up = |error| GiveUp {
            index,
            module: destination.module.kind(),
            attempts,
            error,
        };
        let delay = destination.retry.delay(attempts, err.retry_after());
        let gives_up = !err.is_retryable()
            || attempts >= destination.retry.attempts()
            || job
                .deadline
                .is_some_and(|deadline| Instant::now() + delay >= deadline);
        let next_retry = (!gives_up).then(|| SystemTime::now() + delay);
        record(
            &route,
            delivery,
            index,
            destination,
            attempts,
            at,
            took,
            Some(&err),
            next_retry,
        );
        if gives_up {
            return Err(give_up(err));
        }
        destination.metrics.retried.increment(1);
        tokio::time::sleep(delay).await;
    }
}

/// Tell the route's history (if any) about one attempt: delivered when `error` is `None`,
/// retrying when `next_retry` is set, else given up.
#[allow(clippy::too_many_arguments)]
fn record(
    route: &Route,
    delivery: &Delivery,
    index: u8,
    destination: &Destination,
    attempt: u32,
    at: SystemTime,
    duration: Duration,
    error: Option<&ModuleError>,
    next_retry: Option<SystemTime>,
) {
    let Some(history) = &route.history else {
        return;
    };
    let state = match (error, next_retry) {
        (None, _) => AttemptState::Delivered,
        (Some(_), Some(_)) => AttemptState::Retrying,
        (Some(_), None) => AttemptState::GivenUp,
    };
    history.record(HistoryEvent::Attempt(AttemptRecord {
        request_id: delivery.request_id,
        webhook: Arc::clone(&delivery.webhook_id),
        destination: index,
        module: destination.module.kind(),
        attempt,
        at,
        duration,
        state,
        error_class: error.map(|e| e.class().as_str()),
        error: error.map(ModuleError::chain),
        next_retry,
    }));
}

/// Run `destination`'s transform on `delivery`: what the destination gets, `None` to skip
/// it, or the permanent failure (counted, logged) that gives it up for this request.
async fn transform_for(
    destination: &Destination,
    transform: &crate::transform::DestinationTransform,
    delivery: &Delivery,
) -> Result<Option<Delivery>, ModuleError> {
    let started = Instant::now();
    let output = transform.apply(delivery).await;
    let metrics = destination.metrics.transform.as_ref();
    if let Some(metrics) = metrics {
        metrics.duration.record(started.elapsed().as_secs_f64());
    }
    output.map_err(|err| {
        if let Some(metrics) = metrics {
            metrics.failed.increment(1);
        }
        tracing::warn!(
            webhook = %delivery.webhook_id,
            request_id = %delivery.request_id,
            module = destination.module.kind(),
            error = %err,
            "transform failed: not retried (the same bytes give the same result)"
        );
        ModuleError::permanent(format!("{} transform: {err}", transform.language))
    })
}

/// One attempt, within `limit` (waiting for a concurrency permit included).
async fn attempt(
    destination: &Destination,
    delivery: &Delivery,
    limit: Duration,
    timeout_secs: f64,
) -> Result<(), ModuleError> {
    let metrics = &destination.metrics;
    let started = Instant::now();
    let work = async {
        let _permit = destination.limit.acquire().await;
        let _in_flight = InFlight::start(metrics);
        destination.module.deliver(delivery).await
    };
    let result = match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(ModuleError::retryable(format!(
            "delivery did not finish within {timeout_secs}s"
        ))),
    };
    metrics.record(
        result.as_ref().map(|_| ()).map_err(|e| e.is_retryable()),
        started.elapsed(),
    );
    result
}

/// Counts a delivery in `webhook_destination_in_flight` while it lives (also when an
/// attempt is cut off by its timeout).
struct InFlight<'a>(&'a DestinationMetrics);

impl<'a> InFlight<'a> {
    fn start(metrics: &'a DestinationMetrics) -> Self {
        metrics.in_flight.increment(1.0);
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}

fn gone(index: u8, attempts: u32, what: &str) -> GiveUp {
    GiveUp {
        index,
        module: "?",
        attempts,
        error: ModuleError::permanent(format!("the {what} is no longer configured")),
    }
}

/// Of two failures, keep the one that tells the sender most clearly to retry.
fn worse(current: Option<ModuleError>, new: ModuleError) -> ModuleError {
    fn rank(class: ErrorClass) -> u8 {
        match class {
            ErrorClass::Unavailable => 2,
            ErrorClass::Retryable => 1,
            ErrorClass::Permanent => 0,
        }
    }
    match current {
        Some(current) if rank(current.class()) >= rank(new.class()) => current,
        _ => new,
    }
}

/// The sender waits (`ack: delivered`): the worst failure becomes the answer.
#[derive(Default)]
struct Waiting {
    worst: std::sync::Mutex<Option<ModuleError>>,
}

impl Progress for Waiting {
    fn delivered(&self, _index: u8) {}

    fn failed(&self, _index: u8, _attempts: u32) {}

    async fn gave_up(&self, give_up: GiveUp) {
        let mut worst = match self.worst.lock() {
            Ok(worst) => worst,
            Err(poisoned) => poisoned.into_inner(),
        };
        *worst = Some(worse(worst.take(), give_up.error));
    }
}

/// `ack: delivered`: deliver to the `targets` (bit i: destination i) of `route` while the
/// sender waits, at most `chain-config.timeout` in all; `Ok` only when every one of them
/// confirmed.
pub(crate) async fn deliver_waiting(
    route: &Arc<Route>,
    delivery: &Delivery,
    targets: u32,
) -> Result<(), ModuleError> {
    let job = Job {
        delivery,
        pending: targets,
        attempts: &[],
        deadline: Some(Instant::now() + Duration::from_secs_f64(route.chain.timeout)),
    };
    let waiting = Waiting::default();
    run_chain(route, &job, &waiting).await;
    let worst = match waiting.worst.into_inner() {
        Ok(worst) => worst,
        Err(poisoned) => poisoned.into_inner(),
    };
    worst.map_or(Ok(()), Err)
}
