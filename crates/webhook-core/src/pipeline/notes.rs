//! What the request path notes about a request as it goes (why it was refused, its
//! headers, its size) so that the request history gets one record per answered request.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method};
use uuid::Uuid;

use super::Webhook;
use crate::history::{HistoryEvent, HistorySink, RequestOutcome, RequestRecord};

/// Filled in by `handle_known`; turned into a [`RequestRecord`] once answered.
#[derive(Debug, Default)]
pub(super) struct Notes {
    /// The fixed reason of a refusal, or of an answer given without delivery.
    pub(super) reason: Option<&'static str>,
    /// Set when the answer was not a delivery: duplicate, handshake, filtered.
    pub(super) outcome: Option<RequestOutcome>,
    pub(super) client_ip: Option<IpAddr>,
    pub(super) method: Method,
    pub(super) headers: Option<Arc<HeaderMap>>,
    pub(super) body: Option<Bytes>,
    pub(super) body_size: usize,
}

impl Notes {
    /// The record of a request to `webhook` answered `status` after `latency`.
    pub(super) fn record(
        self,
        sink: &dyn HistorySink,
        webhook: &Webhook,
        request_id: Uuid,
        received_at: SystemTime,
        status: u16,
        latency: Duration,
    ) {
        let outcome = self.outcome.unwrap_or(match status {
            200..=299 => RequestOutcome::Accepted,
            500.. => RequestOutcome::Failed,
            _ => RequestOutcome::Rejected,
        });
        let body = self.body.filter(|_| webhook.history.bodies).map(|body| {
            // what `credential_cleanup` masks for destinations is masked here too
            let body = match &webhook.cleanup {
                Some(cleanup) if webhook.data_type == crate::DataType::Json => {
                    cleanup.body(&body).unwrap_or(body)
                }
                _ => body,
            };
            let cap = webhook.history.max_body_bytes.min(body.len());
            body.slice(..cap)
        });
        sink.record(HistoryEvent::Request(RequestRecord {
            request_id,
            webhook: Arc::clone(&webhook.id),
            received_at,
            client_ip: self.client_ip.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            method: self.method,
            status,
            outcome,
            reason: self.reason,
            latency,
            body_size: self.body_size,
            headers: self.headers.unwrap_or_default(),
            body,
            ack: webhook.ack.as_str(),
        }));
    }
}
