//! `oauth1`: an OAuth 1.0 signed request (RFC 5849, section 3): `HMAC-SHA1` or
//! `PLAINTEXT`, the timestamp within a window, and each nonce good once.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;
use webhook_core::config::{Secret, de};
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

/// RFC 5849 3.6: everything but the unreserved characters is encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Nonces remembered at most; past it the oldest are forgotten (they are outside the
/// timestamp window by then, or the window is checked off).
const MAX_NONCES: usize = 100_000;

/// The `oauth1` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth1Config {
    /// The client's key (`oauth_consumer_key`).
    pub consumer_key: String,
    /// The client's secret.
    pub consumer_secret: Secret,
    /// The token secret, when the client signs with a token (default empty).
    #[serde(default)]
    pub token_secret: Option<Secret>,
    /// `HMAC-SHA1` (default) or `PLAINTEXT`.
    #[serde(default = "default_method")]
    pub signature_method: String,
    /// Refuse timestamps outside `timestamp_window` (default `true`).
    #[serde(default = "yes")]
    pub verify_timestamp: bool,
    /// Seconds a timestamp may be off from now (default 300).
    #[serde(default = "default_window", deserialize_with = "de::number")]
    pub timestamp_window: u64,
    /// Refuse a nonce seen before (default `true`).
    #[serde(default = "yes")]
    pub verify_nonce: bool,
}

fn default_method() -> String {
    "HMAC-SHA1".to_owned()
}

fn yes() -> bool {
    true
}

fn default_window() -> u64 {
    300
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    HmacSha1,
    Plaintext,
}

/// See the module docs.
#[derive(Debug)]
pub struct OAuth1 {
    consumer_key: String,
    /// `enc(consumer_secret)&enc(token_secret)`.
    signing_key: Secret,
    method: Method,
    window: Option<u64>,
    nonces: Option<Mutex<Nonces>>,
}

#[derive(Debug, Default)]
struct Nonces {
    seen: HashMap<String, u64>,
    order: VecDeque<(String, u64)>,
}

impl Validator for OAuth1 {
    const KEY: &'static str = "oauth1";
    type Config = OAuth1Config;

    fn build(config: OAuth1Config) -> Result<Self, BuildError> {
        if config.consumer_key.is_empty() {
            return Err(BuildError::key("consumer_key", "must not be empty"));
        }
        if config.consumer_secret.expose().is_empty() {
            return Err(BuildError::key("consumer_secret", "must not be empty"));
        }
        let method = match config.signature_method.to_ascii_uppercase().as_str() {
            "HMAC-SHA1" => Method::HmacSha1,
            "PLAINTEXT" => Method::Plaintext,
            _ => {
                return Err(BuildError::key(
                    "signature_method",
                    format!(
                        "`{}` is not supported: HMAC-SHA1 or PLAINTEXT",
                        config.signature_method
                    ),
                ));
            }
        };
        if !(1..=86_400).contains(&config.timestamp_window) {
            return Err(BuildError::key(
                "timestamp_window",
                "must be between 1 and 86400 seconds",
            ));
        }
        let token_secret = config.token_secret.as_ref().map_or("", |s| s.expose());
        Ok(Self {
            consumer_key: config.consumer_key,
            signing_key: Secret::new(format!(
                "{}&{}",
                encode(config.consumer_secret.expose()),
                encode(token_secret)
            )),
            method,
            window: config.verify_timestamp.then_some(config.timestamp_window),
            nonces: config.verify_nonce.then(Mutex::default),
        })
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        vec![http::header::AUTHORIZATION]
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        self.verify(request).into()
    }
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

fn decode(text: &str) -> Option<String> {
    percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// The `OAuth k="v", …` parameters of an Authorization header (decoded), without `realm`.
fn header_params(value: &str) -> Option<Vec<(String, String)>> {
    let rest = value
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("oauth "))
        .map(|_| &value[6..])?;
    let mut params = Vec::new();
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, quoted) = part.split_once('=')?;
        let inner = quoted.trim().strip_prefix('"')?.strip_suffix('"')?;
        let name = decode(name.trim())?;
        if name != "realm" {
            params.push((name, decode(inner)?));
        }
    }
    Some(params)
}

impl OAuth1 {
    fn verify(&self, request: &RequestView<'_>) -> Result<(), Rejection> {
        let missing = || Rejection::unauthorized("oauth1_missing");
        let malformed = || Rejection::unauthorized("oauth1_malformed");
        let value = request
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(missing)?
            .to_str()
            .map_err(|_| malformed())?;
        let params = header_params(value).ok_or_else(missing)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let signature = get("oauth_signature").ok_or_else(malformed)?;
        let key = get("oauth_consumer_key").ok_or_else(malformed)?;
        if !bool::from(key.as_bytes().ct_eq(self.consumer_key.as_bytes())) {
            return Err(Rejection::unauthorized("oauth1_mismatch"));
        }
        let method_ok = match (self.method, get("oauth_signature_method")) {
            (Method::HmacSha1, Some(m)) => m.eq_ignore_ascii_case("HMAC-SHA1"),
            (Method::Plaintext, Some(m)) => m.eq_ignore_ascii_case("PLAINTEXT"),
            (_, None) => false,
        };
        if !method_ok || get("oauth_version").is_some_and(|v| v != "1.0") {
            return Err(Rejection::unauthorized("oauth1_mismatch"));
        }
        let timestamp: u64 = match get("oauth_timestamp") {
            Some(t) => t.parse().map_err(|_| malformed())?,
            None if self.method == Method::Plaintext => 0,
            None => return Err(malformed()),
        };
        let nonce = get("oauth_nonce");
        if self.method == Method::HmacSha1 && nonce.is_none() {
            return Err(malformed());
        }
        let signed = match self.method {
            Method::Plaintext => bool::from(
                signature
                    .as_bytes()
                    .ct_eq(self.signing_key.expose().as_bytes()),
            ),
            Method::HmacSha1 => ["https", "http"].iter().any(|scheme| {
                let base = base_string(request, scheme, &params);
                let mut mac =
                    <Hmac<Sha1> as KeyInit>::new_from_slice(self.signing_key.expose().as_bytes())
                        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(base.as_bytes());
                BASE64
                    .decode(signature)
                    .is_ok_and(|given| mac.verify_slice(&given).is_ok())
            }),
        };
        if !signed {
            return Err(Rejection::unauthorized("oauth1_signature_mismatch"));
        }
        let now = request
            .received_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(window) = self.window
            && now.abs_diff(timestamp) > window
        {
            return Err(Rejection::unauthorized("timestamp_out_of_tolerance"));
        }
        if let (Some(nonces), Some(nonce)) = (&self.nonces, nonce) {
            let mut nonces = match nonces.lock() {
                Ok(n) => n,
                Err(poisoned) => poisoned.into_inner(),
            };
            let key = format!("{timestamp}:{nonce}");
            if nonces.seen.contains_key(&key) {
                return Err(Rejection::unauthorized("oauth1_replay"));
            }
            let keep = self.window.unwrap_or(300) + 60;
            while let Some((old, at)) = nonces.order.front().cloned() {
                if nonces.order.len() < MAX_NONCES && now.saturating_sub(at) <= keep {
                    break;
                }
                nonces.order.pop_front();
                nonces.seen.remove(&old);
            }
            nonces.seen.insert(key.clone(), now);
            nonces.order.push_back((key, now));
        }
        Ok(())
    }
}

/// RFC 5849 3.4.1: `METHOD&enc(base URI)&enc(normalized parameters)`, the parameters
/// being the header's (but `oauth_signature`), the query's and a form body's.
fn base_string(request: &RequestView<'_>, scheme: &str, header: &[(String, String)]) -> String {
    let host = request
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(request.uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or("")
        .to_ascii_lowercase();
    let host = match (scheme, host.rsplit_once(':')) {
        ("http", Some((name, "80"))) | ("https", Some((name, "443"))) => name.to_owned(),
        _ => host,
    };
    let uri = format!("{scheme}://{host}{}", request.uri.path());
    let mut params: Vec<(String, String)> = header
        .iter()
        .filter(|(name, _)| name != "oauth_signature")
        .map(|(n, v)| (encode(n), encode(v)))
        .collect();
    let mut add_form = |text: &[u8]| {
        for (name, value) in form_urlencoded::parse(text) {
            params.push((encode(&name), encode(&value)));
        }
    };
    if let Some(query) = request.uri.query() {
        add_form(query.as_bytes());
    }
    let form = request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        add_form(request.body);
    }
    params.sort();
    let normalized = params
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        request.method.as_str().to_ascii_uppercase(),
        encode(&uri),
        encode(&normalized)
    )
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn rfc5849_section_3_4_1_1_example_base_string() {
        // the RFC's own example request
        let mut headers = http::HeaderMap::new();
        headers.insert("host", http::HeaderValue::from_static("example.com"));
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let uri: http::Uri = "/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b".parse().unwrap();
        let body = bytes::Bytes::from_static(b"c2&a3=2+q");
        let view = RequestView {
            webhook_id: "t",
            method: &http::Method::POST,
            uri: &uri,
            headers: &headers,
            peer: "127.0.0.1:1".parse().unwrap(),
            client_ip: "127.0.0.1".parse().unwrap(),
            body: &body,
            received_at: SystemTime::now(),
        };
        let header = header_params(
            r#"OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", oauth_signature="djosJKDKJSD8743243%2Fjdk33klY%3D""#,
        )
        .unwrap();
        assert_eq!(
            base_string(&view, "http", &header),
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
        );
    }
}
