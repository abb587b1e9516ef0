//! The `websocket` destination: one kept-open WebSocket connection per destination,
//! reconnected with backoff when it drops, one frame per webhook, in order.
//!
//! `format: "json"` (the default) sends a text frame `{"payload": …, "headers"?: …}` (the
//! body embedded byte for byte); any other format sends the raw body as a binary frame.
//! Without `wait_for_response` a webhook counts as delivered once its frame is written to
//! the connection; with it, once the peer answered with a frame within `timeout`. While the
//! connection is down, deliveries fail at once as unavailable (the sender gets 503).
//!
//! ```json
//! {"live": {"module": "websocket", "module-config": {
//!     "url": "wss://events.internal/ingest", "format": "json", "include_headers": true,
//!     "wait_for_response": true, "timeout": 5, "headers": {"Authorization": "Bearer {$WS_TOKEN}"}}}}
//! ```

mod config;
mod connection;
mod error;
mod module;

pub use config::{FrameFormat, WebSocketConfig};
pub use module::WebSocket;

/// Add the `websocket` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<WebSocket>();
}
