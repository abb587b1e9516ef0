use serde::Deserialize;
use webhook_core::config::{Secret, de};

/// A connections.json entry of type `rabbitmq`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitConnection {
    /// Broker host.
    pub host: String,
    /// Broker port (default 5672).
    #[serde(default = "default_port", deserialize_with = "de::number")]
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub pass: Secret,
    /// Virtual host (default `/`).
    #[serde(default = "default_vhost")]
    pub vhost: String,
}

fn default_port() -> u16 {
    5672
}

fn default_vhost() -> String {
    "/".to_owned()
}

/// `module-config` of `rabbitmq`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitConfig {
    /// The queue (declared durable when publishing to the default exchange).
    pub queue_name: String,
    /// Exchange to publish to (default: the default exchange `""`).
    #[serde(default)]
    pub exchange: String,
    /// Routing key (default: `queue_name`).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Arguments of the queue declaration, e.g. `{"x-queue-version": 2}` or
    /// `{"x-queue-type": "quorum"}`. The broker refuses a declaration whose arguments
    /// differ from those of an existing queue, so they must match it.
    #[serde(default)]
    pub queue_arguments: serde_json::Map<String, serde_json::Value>,
}
