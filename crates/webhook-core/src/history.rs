//! Request history: what the pipeline tells a [`HistorySink`] about every request to a
//! known webhook (accepted, rejected with its reason, duplicate, filtered…) and every
//! delivery attempt. The pipeline only hands events over — never waits, never fails a
//! request because of history; where they are kept (the server's SQLite file,
//! `webhook-history`) and how they are queried is the sink's business.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use uuid::Uuid;

/// Where the pipeline sends history events. `record` must return at once (queue the event,
/// or drop it and count the drop when the queue is full): it runs on the request path.
pub trait HistorySink: Send + Sync + std::fmt::Debug {
    /// Take one event.
    fn record(&self, event: HistoryEvent);
}

/// One thing that happened.
#[derive(Debug)]
pub enum HistoryEvent {
    /// A request to a known webhook was answered.
    Request(RequestRecord),
    /// A destination was attempted (or given up without an attempt).
    Attempt(AttemptRecord),
}

/// How a request ended, as the history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Answered 2xx and handed to its destinations.
    Accepted,
    /// Answered by a validator without delivery because it was seen before.
    Duplicate,
    /// Answered by a validator itself (a provider's handshake or challenge).
    Answered,
    /// Answered 200 without delivery: no filter matched.
    Filtered,
    /// Refused (4xx): `reason` says why.
    Rejected,
    /// Not taken (5xx): the spool or the destinations could not take it; the sender retries.
    Failed,
}

impl RequestOutcome {
    /// The outcome's name in the history (`accepted`, `rejected`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Answered => "answered",
            Self::Filtered => "filtered",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// One answered request to a known webhook.
#[derive(Debug)]
pub struct RequestRecord {
    /// The id in `X-Request-Id` and on every delivery.
    pub request_id: Uuid,
    /// The webhook id.
    pub webhook: Arc<str>,
    /// When it arrived.
    pub received_at: SystemTime,
    /// The client (after trusted proxies).
    pub client_ip: IpAddr,
    /// The HTTP method.
    pub method: http::Method,
    /// The status answered.
    pub status: u16,
    /// How it ended.
    pub outcome: RequestOutcome,
    /// The fixed reason of a rejection or of a validator's own answer
    /// (`signature_mismatch`, `rate_limited`, `body_too_large`, `malformed_json`,
    /// `filtered`…).
    pub reason: Option<&'static str>,
    /// From arrival to the answer.
    pub latency: Duration,
    /// Body bytes received (0 when it was refused before the body was read).
    pub body_size: usize,
    /// The request headers as received. The sink masks credentials and signatures
    /// ([`crate::is_sensitive_header`]) before it keeps them.
    pub headers: Arc<HeaderMap>,
    /// The body, only when the webhook opts in (`"history": {"bodies": true}`), cut to its
    /// `max_body_bytes`.
    pub body: Option<Bytes>,
    /// How the webhook acknowledges (`persisted`, `accepted`, `delivered`).
    pub ack: &'static str,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptState {
    /// The destination confirmed: done.
    Delivered,
    /// It failed and will be tried again after `next_retry`.
    Retrying,
    /// It failed for good (or was not attempted): a dead letter when the webhook spools,
    /// the failure answered to the sender with `ack: delivered`.
    GivenUp,
}

impl AttemptState {
    /// The state's name in the history.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::GivenUp => "given_up",
        }
    }
}

/// One attempt at one destination.
#[derive(Debug)]
pub struct AttemptRecord {
    /// The request's id.
    pub request_id: Uuid,
    /// The webhook id.
    pub webhook: Arc<str>,
    /// The destination's index in the webhook's chain.
    pub destination: u8,
    /// The destination's kind (`kafka`, `http`…; `?` when it is no longer configured).
    pub module: &'static str,
    /// Which attempt this was (1 = the first); 0 when it was given up without an attempt.
    pub attempt: u32,
    /// When the attempt started.
    pub at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// What became of it.
    pub state: AttemptState,
    /// The failure's class (`retryable`, `permanent`, `unavailable`), when it failed.
    pub error_class: Option<&'static str>,
    /// The failure, as the destination described it (no secrets: destinations' errors
    /// never carry credentials).
    pub error: Option<String>,
    /// When the next attempt is due, for [`AttemptState::Retrying`].
    pub next_retry: Option<SystemTime>,
}

/// A webhook's `history` key: `{"bodies": true, "max_body_bytes": 65536}`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Keep the body of each request in the history (default false: only its size).
    pub bodies: bool,
    /// Longest body kept, in bytes (default 64 KiB); longer bodies are cut.
    pub max_body_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            bodies: false,
            max_body_bytes: 64 * 1024,
        }
    }
}
