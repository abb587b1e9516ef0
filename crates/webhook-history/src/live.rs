//! Live events: what the writer has just committed, as the JSON of one Server-Sent Event
//! each, for whoever follows the history (`GET /admin/events`, the dashboard's log).
//!
//! Sent after the batch's commit, so a reader that asks the history for the event's
//! request finds it.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::broadcast;
use webhook_core::history::HistoryEvent;

use crate::query::rfc3339;
use crate::writer::millis;

/// One committed change: the SSE event's name and its JSON data.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// `request` or `attempt`.
    pub kind: &'static str,
    /// The webhook id (for filtering without parsing `data`).
    pub webhook: Arc<str>,
    /// The event's JSON: the request's list fields, or the attempt's state.
    pub data: Arc<str>,
}

/// Events buffered per follower before a slow one starts missing some.
pub(crate) const BUFFER: usize = 1024;

/// Send `batch` to the followers, if there are any (no JSON is built otherwise).
pub(crate) fn publish(live: &broadcast::Sender<LiveEvent>, batch: &[HistoryEvent]) {
    if live.receiver_count() == 0 {
        return;
    }
    for event in batch {
        let _ = live.send(of(event));
    }
}

fn of(event: &HistoryEvent) -> LiveEvent {
    match event {
        HistoryEvent::Request(r) => LiveEvent {
            kind: "request",
            webhook: Arc::clone(&r.webhook),
            data: json!({
                "request_id": r.request_id.hyphenated().to_string(),
                "webhook": &*r.webhook,
                "received_at": rfc3339(millis(r.received_at)),
                "client_ip": r.client_ip.to_string(),
                "method": r.method.as_str(),
                "status": r.status,
                "outcome": r.outcome.as_str(),
                "reason": r.reason,
                "latency_ms": r.latency.as_secs_f64() * 1000.0,
                "body_size": r.body_size,
                "ack": r.ack,
            })
            .to_string()
            .into(),
        },
        HistoryEvent::Attempt(a) => LiveEvent {
            kind: "attempt",
            webhook: Arc::clone(&a.webhook),
            data: json!({
                "request_id": a.request_id.hyphenated().to_string(),
                "webhook": &*a.webhook,
                "destination": a.destination,
                "module": a.module,
                "attempt": a.attempt,
                "at": rfc3339(millis(a.at)),
                "state": a.state.as_str(),
                "error_class": a.error_class,
                "next_retry": a.next_retry.map(|t| rfc3339(millis(t))),
            })
            .to_string()
            .into(),
        },
    }
}
