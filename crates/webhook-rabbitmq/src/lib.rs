//! The `rabbitmq` destination: publishes each webhook to RabbitMQ with publisher confirms,
//! over one long-lived connection per connections.json entry.
//!
//! By default the message goes to the default exchange with routing key = `queue_name`,
//! and the queue is declared durable once per connection. Messages are persistent
//! (delivery mode 2), carry the HTTP headers as AMQP headers, the request's content type,
//! and the request id as `message_id`. `deliver` returns only after the broker confirmed
//! the message. When the connection drops, deliveries fail as unavailable (the sender gets
//! 503 and retries) and the next delivery reconnects.
//!
//! ```json
//! {"orders": {"module": "rabbitmq", "connection": "rabbit", "module-config": {"queue_name": "orders"}}}
//! ```

mod broker;
mod config;
mod error;
mod module;

pub use config::{RabbitConfig, RabbitConnection};
pub use module::RabbitMq;

/// Add the `rabbitmq` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<RabbitMq>();
}
