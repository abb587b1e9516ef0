use serde::Deserialize;
use webhook_core::config::de;

/// A connections.json entry of type `kafka`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConnection {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
}

impl KafkaConnection {
    pub(crate) fn brokers(&self) -> Vec<String> {
        self.bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `module-config` of `kafka`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// The topic (must exist).
    pub topic: String,
    /// A fixed record key.
    #[serde(default)]
    pub key: Option<String>,
    /// Take the key from this request header (falls back to `key` when absent).
    #[serde(default)]
    pub key_from_header: Option<String>,
    /// A fixed partition.
    #[serde(default, deserialize_with = "de::option_number")]
    pub partition: Option<i32>,
    /// Copy the HTTP headers into the record headers (default false).
    #[serde(default)]
    pub forward_headers: bool,
}
