//! The `http_webhook` destination: forwards each webhook, body byte for byte, to an HTTP(S)
//! endpoint over pooled keep-alive connections (the shared client of
//! `webhook-http-client`).
//!
//! A 2xx answer is a delivery; anything else is a failure: 408, 429, 5xx, timeouts and
//! connection errors are retryable (a target's `Retry-After` is carried to the retry layer
//! and to the sender), other 4xx are not. Redirects are not followed.
//!
//! ```json
//! {"orders": {"module": "http_webhook", "module-config": {
//!     "url": "https://orders.internal/hooks", "method": "POST", "forward_headers": true,
//!     "headers": {"Authorization": "Bearer {$ORDERS_TOKEN}"}, "timeout": 10}}}
//! ```

mod config;
mod module;

pub use config::{HttpConfig, HttpMethod};
pub use module::{HttpWebhook, REQUEST_ID_HEADER};

/// Add the `http_webhook` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<HttpWebhook>();
}
