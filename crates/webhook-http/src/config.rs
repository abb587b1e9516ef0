use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use webhook_core::config::de;

/// `module-config` of `http_webhook`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The target, `http://` or `https://`.
    pub url: String,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default)]
    pub method: HttpMethod,
    /// Pass the sender's headers on (hop-by-hop headers, `Host` and `Content-Length` are
    /// dropped); default false: only `Content-Type` is passed on.
    #[serde(default)]
    pub forward_headers: bool,
    /// Headers to set on every request; they win over forwarded ones.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Seconds the whole exchange may take (default 30).
    #[serde(default = "default_timeout", deserialize_with = "de::number")]
    pub timeout: f64,
    /// Refuse targets that are or resolve to private, loopback or link-local addresses
    /// (checked on every connection); default false.
    #[serde(default)]
    pub deny_private_targets: bool,
    /// Hosts allowed despite `deny_private_targets` (the original's key; setting it turns
    /// the guard on).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl HttpConfig {
    /// The SSRF guard this destination asks for, if any.
    pub fn guard(&self) -> Option<webhook_http_client::TargetGuard> {
        webhook_http_client::TargetGuard::from_config(&webhook_http_client::GuardConfig {
            deny_private_targets: self.deny_private_targets,
            allowed_hosts: self.allowed_hosts.clone(),
        })
    }
}

fn default_timeout() -> f64 {
    30.0
}

/// The methods a webhook may be forwarded with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpMethod {
    /// `POST`
    #[default]
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
}

impl HttpMethod {
    /// As an [`http::Method`].
    pub fn as_method(self) -> http::Method {
        match self {
            HttpMethod::Post => http::Method::POST,
            HttpMethod::Put => http::Method::PUT,
            HttpMethod::Patch => http::Method::PATCH,
        }
    }
}

impl<'de> Deserialize<'de> for HttpMethod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_uppercase().as_str() {
            "POST" => Ok(HttpMethod::Post),
            "PUT" => Ok(HttpMethod::Put),
            "PATCH" => Ok(HttpMethod::Patch),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not supported: use POST, PUT or PATCH"
            ))),
        }
    }
}
