use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use webhook_core::config::de;

/// `module-config` of `websocket`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketConfig {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// `json` (default): a text frame `{"payload", "headers"?}`; anything else (`raw`,
    /// `binary`…): the body as a binary frame.
    #[serde(default)]
    pub format: FrameFormat,
    /// With `json`, add the request headers to the frame (default false).
    #[serde(default)]
    pub include_headers: bool,
    /// Count a webhook as delivered only when the peer answers with a frame (default false).
    #[serde(default)]
    pub wait_for_response: bool,
    /// Seconds for connecting and for the peer's answer (default 10).
    #[serde(default = "default_timeout", deserialize_with = "de::number")]
    pub timeout: f64,
    /// Accepted for compatibility with the original, which retried inside the module; here
    /// retries are the webhook's `retry` setting and reconnecting never stops.
    #[serde(default, deserialize_with = "de::option_number")]
    pub max_retries: Option<u32>,
    /// HTTP headers of the opening handshake (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Refuse targets that are or resolve to private, loopback or link-local addresses
    /// (checked on the address each connection is made to); default false.
    #[serde(default)]
    pub deny_private_targets: bool,
    /// Hosts allowed despite `deny_private_targets` (the original's key; setting it turns
    /// the guard on).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

fn default_timeout() -> f64 {
    10.0
}

/// How a webhook becomes a frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FrameFormat {
    /// A text frame `{"payload": …, "headers"?: …}`.
    #[default]
    Json,
    /// The raw body as a binary frame.
    Raw,
}

impl<'de> Deserialize<'de> for FrameFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(if text.eq_ignore_ascii_case("json") {
            FrameFormat::Json
        } else {
            FrameFormat::Raw
        })
    }
}
