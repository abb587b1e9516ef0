use serde::Deserialize;
use webhook_core::config::{Secret, de};

/// A connections.json entry of type `redis-rq` (or `redis`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConnection {
    /// Server host (default `127.0.0.1`).
    #[serde(default = "default_host")]
    pub host: String,
    /// Server port (default 6379).
    #[serde(default = "default_port", deserialize_with = "de::number")]
    pub port: u16,
    /// Database number (default 0).
    #[serde(default, deserialize_with = "de::number")]
    pub db: u8,
    /// Optional ACL user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Optional password.
    #[serde(default)]
    pub password: Option<Secret>,
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}

fn default_port() -> u16 {
    6379
}

/// How an RQ job's data is serialized; must match the worker's `--serializer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RqSerializer {
    /// Python pickle: RQ's default.
    #[default]
    Pickle,
    /// `rq.serializers.JSONSerializer`.
    Json,
}

/// `module-config` of `redis_rq`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RqConfig {
    /// Dotted path of the Python function the worker calls as `function(payload, headers)`.
    pub function: String,
    /// RQ queue name (default `default`).
    #[serde(default = "default_queue")]
    pub queue_name: String,
    /// `pickle` (default) or `json`.
    #[serde(default)]
    pub serializer: RqSerializer,
    /// Job timeout in seconds written into the job (default 180, RQ's default).
    #[serde(default = "default_job_timeout", deserialize_with = "de::number")]
    pub timeout: u32,
}

fn default_queue() -> String {
    "default".to_owned()
}

fn default_job_timeout() -> u32 {
    180
}

/// `module-config` of `redis_publish`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Channel to publish on (default `webhook_events`).
    #[serde(default = "default_channel")]
    pub channel: String,
}

fn default_channel() -> String {
    "webhook_events".to_owned()
}
