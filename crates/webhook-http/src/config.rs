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
