//! The delivery engine: hands one [`Delivery`] to a webhook's destinations, with retries,
//! chaining and an overall deadline. It is independent of HTTP, so a queue worker can run
//! the same code later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::config::{ChainConfig, Execution, RetryConfig};
use crate::metrics::DestinationMetrics;
use crate::{Delivery, DynModule, ErrorClass, ModuleError};

/// One destination of a webhook, built and connected.
pub(crate) struct Destination {
    pub(crate) module: Arc<dyn DynModule>,
    pub(crate) retry: RetryConfig,
    pub(crate) metrics: Arc<DestinationMetrics>,
    /// The webhook's data type and the plan's fingerprint: equal means "same destination".
    pub(crate) fingerprint: Arc<str>,
    /// Most background deliveries to this destination at once.
    pub(crate) limit: Arc<tokio::sync::Semaphore>,
}

/// Deliver to every destination; `Ok` only when every one of them confirmed.
pub(crate) async fn deliver(
    destinations: &[Destination],
    chain: &ChainConfig,
    delivery: &Delivery,
) -> Result<(), ModuleError> {
    let deadline = Duration::from_secs_f64(chain.timeout);
    let work = async {
        match (destinations, chain.execution) {
            ([only], _) => deliver_one(only, delivery).await,
            (_, Execution::Sequential) => {
                sequential(destinations, chain.continue_on_error, delivery).await
            }
            (_, Execution::Parallel) => parallel(destinations, delivery).await,
        }
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(ModuleError::retryable(format!(
            "delivery did not finish within {}s",
            chain.timeout
        ))),
    }
}

async fn sequential(
    destinations: &[Destination],
    continue_on_error: bool,
    delivery: &Delivery,
) -> Result<(), ModuleError> {
    let mut failure: Option<ModuleError> = None;
    for destination in destinations {
        if let Err(err) = deliver_one(destination, delivery).await {
            failure = Some(worse(failure, err));
            if !continue_on_error {
                break;
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

async fn parallel(destinations: &[Destination], delivery: &Delivery) -> Result<(), ModuleError> {
    let mut tasks = JoinSet::new();
    for destination in destinations {
        let destination = Destination {
            module: Arc::clone(&destination.module),
            retry: destination.retry,
            metrics: Arc::clone(&destination.metrics),
            fingerprint: Arc::clone(&destination.fingerprint),
            limit: Arc::clone(&destination.limit),
        };
        let delivery = delivery.clone();
        tasks.spawn(async move { deliver_one(&destination, &delivery).await });
    }
    let mut failure: Option<ModuleError> = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|err| {
            Err(ModuleError::retryable("delivery task failed").with_source(err))
        });
        if let Err(err) = result {
            failure = Some(worse(failure, err));
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Deliver to one destination, retrying retryable failures as its `retry` config says.
async fn deliver_one(destination: &Destination, delivery: &Delivery) -> Result<(), ModuleError> {
    let Destination {
        module,
        retry,
        metrics,
        ..
    } = destination;
    let attempts = retry.attempts();
    let mut attempt = 1;
    loop {
        metrics.in_flight.increment(1.0);
        let started = Instant::now();
        let result = module.deliver(delivery).await;
        metrics.in_flight.decrement(1.0);
        let err = match result {
            Ok(()) => {
                metrics.record(Ok(()), started.elapsed());
                return Ok(());
            }
            Err(err) => err,
        };
        metrics.record(Err(err.is_retryable()), started.elapsed());
        tracing::warn!(
            webhook = %delivery.webhook_id,
            request_id = %delivery.request_id,
            module = module.kind(),
            class = err.class().as_str(),
            attempt,
            error = %err.chain(),
            "delivery failed"
        );
        if !err.is_retryable() || attempt >= attempts {
            return Err(err);
        }
        let max = Duration::from_secs_f64(retry.max_delay);
        let delay = err
            .retry_after()
            .unwrap_or_else(|| retry.delay(attempt))
            .min(max);
        tokio::time::sleep(delay).await;
        metrics.retried.increment(1);
        attempt += 1;
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
