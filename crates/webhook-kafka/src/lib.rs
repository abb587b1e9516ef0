//! The `kafka` destination: one record per webhook, produced with `rskafka` over one client
//! per connections.json entry. Records for the same partition are batched with a short
//! linger, and each `deliver` resolves only when the broker acknowledged its batch.
//!
//! * `topic` (required), `key` (fixed key), `key_from_header` (key = that request header,
//!   e.g. `X-GitHub-Delivery`, so consumers can order by event), `partition` (fixed), and
//!   `forward_headers` (HTTP headers as record headers). Every record carries the request
//!   id as header `x-request-id`, for de-duplication.
//! * Without `partition`, a keyed record goes to `murmur2(key) % partitions` (the partition
//!   Kafka's Java and Python clients choose), an unkeyed one round-robin.
//! * A topic that does not exist is a start-up error when the broker is reachable, and a
//!   non-retryable delivery error otherwise.
//!
//! ```json
//! {"github": {"module": "kafka", "connection": "kafka_local",
//!             "module-config": {"topic": "github-events", "key_from_header": "X-GitHub-Delivery"}}}
//! ```

mod cluster;
mod config;
mod error;
mod module;
mod partitioner;

pub use config::{KafkaConfig, KafkaConnection};
pub use module::Kafka;
pub use partitioner::murmur2;

/// Add the `kafka` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<Kafka>();
}
