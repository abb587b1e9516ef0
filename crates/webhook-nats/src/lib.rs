//! The `nats` destination: publishes each webhook to NATS over one long-lived,
//! self-reconnecting [async-nats](https://docs.rs/async-nats) client per connections.json
//! entry.
//!
//! * **JetStream** (`jetstream: true`, or when a stream captures the subject): `deliver`
//!   returns once the stream acknowledged the message (it is stored). `Nats-Msg-Id` is the
//!   request id, so a redelivery within the stream's duplicate window is dropped by the
//!   server.
//! * **Core NATS** (`jetstream: false`, or no stream): publish, then a flush (PING/PONG):
//!   the server has the message; it reaches the subscribers connected at that moment.
//!
//! The body is sent as received; HTTP headers travel as NATS headers.
//!
//! ```json
//! {"orders": {"module": "nats", "connection": "nats",
//!             "module-config": {"subject": "webhooks.orders", "subject_header": "X-GitHub-Event"}}}
//! ```

mod client;
mod config;
mod error;
mod module;

pub use config::{NatsConfig, NatsConnection};
pub use module::Nats;

/// Add the `nats` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<Nats>();
}
