use serde::Deserialize;
use webhook_core::config::{Secret, de};

/// A connections.json entry of type `mqtt` (the original's keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConnection {
    /// Broker host (default `localhost`).
    #[serde(default = "default_host")]
    pub host: String,
    /// Broker port (default 1883).
    #[serde(default = "default_port", deserialize_with = "de::number")]
    pub port: u16,
    /// User name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// MQTT client identifier (default: `webhook-gateway-<process id>-<connection name>`).
    /// Two clients with one id knock each other off the broker: give each instance its own.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Keep-alive interval in seconds (default 60).
    #[serde(default = "default_keepalive", deserialize_with = "de::number")]
    pub keepalive: u16,
    /// `3.1.1` (default) or `3.1`; `5`/`5.0` are accepted and served with 3.1.1, which
    /// every MQTT 5 broker speaks too.
    #[serde(default)]
    pub mqtt_version: Option<String>,
    /// Connect over TLS (system roots plus `tls_ca_cert_file`).
    #[serde(default)]
    pub tls: bool,
    /// The original's switch to skip certificate checks: refused (give `tls_ca_cert_file`).
    #[serde(default)]
    pub tls_insecure: bool,
    /// Extra CA certificate file (PEM) to trust.
    #[serde(default)]
    pub tls_ca_cert_file: Option<String>,
    /// Client certificate file (PEM), with `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<String>,
    /// Client key file (PEM), with `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<String>,
}

fn default_host() -> String {
    "localhost".to_owned()
}

fn default_port() -> u16 {
    1883
}

fn default_keepalive() -> u16 {
    60
}

/// `module-config` of `mqtt` (the original's keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The topic (also read from the webhook's top level, as the original allows).
    pub topic: String,
    /// 0, 1 (default) or 2.
    #[serde(default = "default_qos", deserialize_with = "de::number")]
    pub qos: u8,
    /// Publish with the retain flag.
    #[serde(default)]
    pub retained: bool,
    /// `json` (default) or `raw`: both send the body as received (the original re-encoded
    /// JSON; the bytes here are the sender's).
    #[serde(default)]
    pub format: Option<String>,
    /// Prepended to the topic with a `/`.
    #[serde(default)]
    pub topic_prefix: Option<String>,
    /// Wrap the body as a Shelly Gen2 RPC frame `{"id", "source", "params"}`.
    #[serde(default)]
    pub shelly_gen2_format: bool,
    /// The Shelly frame's `id` (default `webhook`).
    #[serde(default)]
    pub device_id: Option<serde_json::Value>,
    /// Publish in Tasmota's topic scheme (`cmnd/<device>/<command>` …).
    #[serde(default)]
    pub tasmota_format: bool,
    /// `cmnd` (default), `stat`, anything else `tele`.
    #[serde(default)]
    pub tasmota_type: Option<String>,
    /// The Tasmota device name (default `webhook`).
    #[serde(default)]
    pub device_name: Option<String>,
    /// The Tasmota command for `cmnd` (default `webhook`).
    #[serde(default)]
    pub command: Option<String>,
}

fn default_qos() -> u8 {
    1
}
