use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use uuid::Uuid;

/// What the body of a webhook must be (`data_type` in webhooks.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// The body must parse as JSON; otherwise the request is answered 400.
    #[default]
    Json,
    /// Any bytes are accepted.
    Blob,
}

impl DataType {
    /// The config spelling: `"json"` or `"blob"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Json => "json",
            DataType::Blob => "blob",
        }
    }
}

/// One accepted webhook, handed to destinations exactly as it was received.
///
/// The body is the raw bytes of the request, never re-serialised; cloning a `Delivery` is
/// cheap (`Bytes` and `Arc` clones), so fan-out never copies the payload.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The webhook id from `POST /webhook/{id}`.
    pub webhook_id: Arc<str>,
    /// A unique id of this request, also returned to the sender as `X-Request-Id`. It stays
    /// the same across retries, so consumers can de-duplicate on it.
    pub request_id: Uuid,
    /// The request headers as received.
    pub headers: Arc<HeaderMap>,
    /// The raw request body.
    pub body: Bytes,
    /// When the request was received (before its body was read).
    pub received_at: SystemTime,
    /// The webhook's `data_type`; with [`DataType::Json`] the body is known to be valid JSON.
    pub data_type: DataType,
}

impl Delivery {
    /// The body as UTF-8 text, if it is valid UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}
