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
    /// Channel to publish on (default: the `redis` block's, else `webhook_events`).
    #[serde(default)]
    pub channel: Option<String>,
    /// The original's own server block, written at the top of the webhook entry instead
    /// of a connections.json entry.
    #[serde(default)]
    pub redis: Option<InlineRedis>,
}

impl PublishConfig {
    /// The channel messages go to.
    pub fn channel(&self) -> &str {
        self.channel
            .as_deref()
            .or(self.redis.as_ref().and_then(|r| r.channel.as_deref()))
            .unwrap_or("webhook_events")
    }
}

/// `redis_publish`'s `redis` block (`{host, port, channel, allowed_hosts}`), as the
/// original's later versions write it beside `module`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineRedis {
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
    /// The channel (when `module-config` does not name one).
    #[serde(default)]
    pub channel: Option<String>,
    /// When given, `host` must be one of them (the original's guard against a config
    /// pointing the gateway at an arbitrary server).
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
}

impl InlineRedis {
    /// The block as a connection.
    pub fn connection(&self) -> RedisConnection {
        RedisConnection {
            host: self.host.clone(),
            port: self.port,
            db: self.db,
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

/// `module-config` of `redis_stream`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream key entries are added to.
    pub stream: String,
    /// Trim the stream to about this many entries (`XADD … MAXLEN ~ n`); no trimming when
    /// absent.
    #[serde(default, deserialize_with = "de::option_number")]
    pub maxlen: Option<u64>,
    /// Request headers copied into the entry as `header:<name>` fields (names matched
    /// case-insensitively; absent headers are left out). `["*"]` copies them all.
    #[serde(default)]
    pub headers: Vec<String>,
}
