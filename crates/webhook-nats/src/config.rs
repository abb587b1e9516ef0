use serde::Deserialize;
use webhook_core::config::{Secret, de};

/// A connections.json entry of type `nats`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConnection {
    /// Server URL(s), comma-separated (`nats://host:4222`, `tls://…`); wins over
    /// `host`/`port`.
    #[serde(default)]
    pub url: Option<String>,
    /// Server host (default `127.0.0.1`).
    #[serde(default = "default_host")]
    pub host: String,
    /// Server port (default 4222).
    #[serde(default = "default_port", deserialize_with = "de::number")]
    pub port: u16,
    /// User name (with `password`).
    #[serde(default, alias = "user")]
    pub username: Option<String>,
    /// Password (with `username`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Token authentication.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Require TLS.
    #[serde(default)]
    pub tls: bool,
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
    "127.0.0.1".to_owned()
}

fn default_port() -> u16 {
    4222
}

/// `module-config` of `nats`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The subject to publish on.
    pub subject: String,
    /// A request header whose value, when present and a valid subject token, is appended:
    /// `subject: "github"` + `X-GitHub-Event: push` → `github.push`.
    #[serde(default)]
    pub subject_header: Option<String>,
    /// `true`: publish to JetStream and wait for the stream's ack; `false`: core NATS;
    /// absent: JetStream when a stream captures the subject, else core NATS.
    #[serde(default)]
    pub jetstream: Option<bool>,
    /// Send the HTTP headers as NATS headers (default true).
    #[serde(default = "default_true")]
    pub include_headers: bool,
}

fn default_true() -> bool {
    true
}
