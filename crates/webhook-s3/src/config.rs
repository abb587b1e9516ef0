use serde::Deserialize;
use webhook_core::config::{Secret, de};

/// A connections.json entry of type `s3`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Connection {
    /// Access key id.
    pub aws_access_key_id: String,
    /// Secret access key.
    pub aws_secret_access_key: Secret,
    /// Session token of temporary credentials, if any.
    #[serde(default)]
    pub aws_session_token: Option<Secret>,
    /// Region (default `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// An S3-compatible server, e.g. `http://127.0.0.1:9000`; default AWS
    /// (`https://s3.<region>.amazonaws.com`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default: on with `endpoint_url`,
    /// off (virtual-hosted style) for AWS.
    #[serde(default)]
    pub path_style: Option<bool>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// `module-config` of `s3`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// Key prefix (default `webhooks`; empty for none).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// File name under `prefix/YYYY/MM/DD/HH/`; `{uuid}` (the request id), `{timestamp}`
    /// (UTC, `20261128T163245Z`) and `{webhook_id}` are replaced. Default
    /// `webhook_{uuid}.json`.
    #[serde(default = "default_pattern")]
    pub filename_pattern: String,
    /// Store the request headers as object metadata (`x-amz-meta-<name>`); credentials
    /// and signatures are left out. Default false.
    #[serde(default)]
    pub include_headers: bool,
    /// The object's `Content-Type` (default `application/json`).
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Seconds one upload may take (default 30).
    #[serde(default = "default_timeout", deserialize_with = "de::number")]
    pub timeout: f64,
}

fn default_prefix() -> String {
    "webhooks".to_owned()
}

fn default_pattern() -> String {
    "webhook_{uuid}.json".to_owned()
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

fn default_timeout() -> f64 {
    30.0
}
