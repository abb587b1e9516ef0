//! Metrics through the `metrics` facade: the program that embeds the pipeline installs a
//! recorder (the server installs a Prometheus one); without one, every call is a no-op.
//!
//! Labels are the webhook id, the destination kind and a fixed reason — never request data.
//! Handles are registered once per webhook and destination when the pipeline is built, so
//! counting on the hot path is an atomic add.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

/// Counters of one webhook.
pub(crate) struct WebhookMetrics {
    id: Arc<str>,
    pub(crate) received: Counter,
    pub(crate) accepted: Counter,
    pub(crate) failed: Counter,
    pub(crate) duplicate: Counter,
    pub(crate) filtered: Counter,
    pub(crate) duration: Histogram,
}

impl WebhookMetrics {
    pub(crate) fn new(id: &Arc<str>) -> Self {
        let webhook = Arc::clone(id);
        Self {
            id: Arc::clone(id),
            received: counter!("webhook_requests_received_total", "webhook" => webhook.clone()),
            accepted: counter!("webhook_requests_accepted_total", "webhook" => webhook.clone()),
            failed: counter!("webhook_requests_failed_total", "webhook" => webhook.clone()),
            duplicate: counter!("webhook_requests_duplicate_total", "webhook" => webhook.clone()),
            filtered: counter!("webhook_requests_filtered_total", "webhook" => webhook.clone()),
            duration: histogram!("webhook_request_duration_seconds", "webhook" => webhook),
        }
    }

    /// A request refused before delivery (`reason` is a fixed, low-cardinality string).
    pub(crate) fn rejected(&self, reason: &'static str) {
        counter!("webhook_requests_rejected_total", "webhook" => Arc::clone(&self.id), "reason" => reason)
            .increment(1);
    }
}

/// Counters of one destination of one webhook.
pub(crate) struct DestinationMetrics {
    pub(crate) delivered: Counter,
    pub(crate) failed_retryable: Counter,
    pub(crate) failed_permanent: Counter,
    pub(crate) retried: Counter,
    pub(crate) dead_lettered: Counter,
    pub(crate) skipped: Counter,
    pub(crate) in_flight: Gauge,
    pub(crate) duration: Histogram,
    /// Where the destination has a `transform`.
    pub(crate) transform: Option<TransformMetrics>,
}

/// Runs of one destination's transform.
pub(crate) struct TransformMetrics {
    pub(crate) failed: Counter,
    pub(crate) duration: Histogram,
}

impl DestinationMetrics {
    pub(crate) fn new(webhook: &Arc<str>, kind: &'static str, transform: bool) -> Self {
        let labels = || {
            [
                ("webhook", Arc::clone(webhook)),
                ("destination", Arc::from(kind)),
            ]
        };
        let failed = |retryable: &'static str| counter!("webhook_destination_failed_total", "webhook" => Arc::clone(webhook), "destination" => kind, "retryable" => retryable);
        Self {
            delivered: counter!("webhook_destination_delivered_total", &labels()),
            failed_retryable: failed("true"),
            failed_permanent: failed("false"),
            retried: counter!("webhook_destination_retries_total", &labels()),
            dead_lettered: counter!("webhook_destination_dead_lettered_total", &labels()),
            skipped: counter!("webhook_destination_skipped_total", &labels()),
            in_flight: gauge!("webhook_destination_in_flight", &labels()),
            duration: histogram!("webhook_delivery_duration_seconds", &labels()),
            transform: transform.then(|| TransformMetrics {
                failed: counter!("webhook_transform_failed_total", &labels()),
                duration: histogram!("webhook_transform_duration_seconds", &labels()),
            }),
        }
    }

    pub(crate) fn record(&self, outcome: Result<(), bool>, took: Duration) {
        match outcome {
            Ok(()) => self.delivered.increment(1),
            Err(true) => self.failed_retryable.increment(1),
            Err(false) => self.failed_permanent.increment(1),
        }
        self.duration.record(took.as_secs_f64());
    }
}
