use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use uuid::Uuid;

/// What the body of a webhook must be (`data_type` in webhooks.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// The body must parse as JSON; otherwise the request is answered 400.
    #[default]
    Json,
    /// Any bytes are accepted.
    Blob,
}

impl DataType {
    /// The config spelling: `"json"` or `"blob"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Json => "json",
            DataType::Blob => "blob",
        }
    }
}

/// One accepted webhook, handed to destinations exactly as it was received.
///
/// The body is the raw bytes of the request, never re-serialised; cloning a `Delivery` is
/// cheap (`Bytes` and `Arc` clones), so fan-out never copies the payload.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The webhook id from `POST /webhook/{id}`.
    pub webhook_id: Arc<str>,
    /// A unique id of this request, also returned to the sender as `X-Request-Id`. It stays
    /// the same across retries, so consumers can de-duplicate on it.
    pub request_id: Uuid,
    /// The request headers as received.
    pub headers: Arc<HeaderMap>,
    /// The query string of the request URL (without `?`), when it had one.
    pub query: Option<Arc<str>>,
    /// The raw request body.
    pub body: Bytes,
    /// When the request was received (before its body was read).
    pub received_at: SystemTime,
    /// The webhook's `data_type`; with [`DataType::Json`] the body is known to be valid JSON.
    pub data_type: DataType,
}

impl Delivery {
    /// About how many bytes this request takes in memory: its body and headers.
    pub fn held_bytes(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 16)
            .sum();
        (self.body.len() + headers + 128) as u64
    }

    /// The body as UTF-8 text, if it is valid UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// The query string's parameters, decoded (`?a=1&b=x%20y` → `{"a": "1", "b": "x y"}`;
    /// of a repeated name, the last value).
    pub fn query_map(&self) -> serde_json::Map<String, serde_json::Value> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
            .collect()
    }

    /// When the request was received, in whole milliseconds since the Unix epoch (cut,
    /// not rounded: the precision the spool keeps, so a request recovered after a crash
    /// says the same).
    pub fn received_at_millis(&self) -> i64 {
        self.received_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            })
    }

    /// When the request was received, as RFC 3339 in UTC (`2026-12-02T18:41:33.123Z`), to
    /// the millisecond of [`Delivery::received_at_millis`].
    pub fn received_at_rfc3339(&self) -> String {
        jiff::Timestamp::from_millisecond(self.received_at_millis())
            .map(|t| format!("{t:.3}"))
            .unwrap_or_default()
    }

    /// The headers as a name → value map (names lower case, repeated headers joined with
    /// `", "`, values decoded lossily as UTF-8), as the original service passed them on.
    pub fn header_map(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for (name, value) in self.headers.iter() {
            let value = String::from_utf8_lossy(value.as_bytes());
            map.entry(name.as_str().to_owned())
                .and_modify(|joined: &mut String| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        map
    }

    /// The original service's message shape, `{"payload": …, "headers": {…}}`.
    ///
    /// A JSON body is embedded byte for byte (never re-serialised); a UTF-8 blob becomes a
    /// JSON string; any other blob a base64 string with `"encoding": "base64"` beside it.
    /// `headers` is left out when `include_headers` is false.
    pub fn json_envelope(&self, include_headers: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.extend_from_slice(b"{\"payload\":");
        match (self.data_type, self.body_str()) {
            (DataType::Json, _) => out.extend_from_slice(&self.body),
            (DataType::Blob, Some(text)) => push_json(&mut out, text),
            (DataType::Blob, None) => {
                push_json(&mut out, &BASE64.encode(&self.body));
                out.extend_from_slice(b",\"encoding\":\"base64\"");
            }
        }
        if include_headers {
            out.extend_from_slice(b",\"headers\":");
            push_json(&mut out, &self.header_map());
        }
        out.push(b'}');
        out
    }
}

/// Whether a header carries a credential or signature, so that it must not be copied into
/// logs or object metadata (`authorization`, `cookie`, `x-hub-signature-256`, `x-api-key`…).
pub fn is_sensitive_header(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    ];
    const FRAGMENTS: &[&str] = &[
        "signature",
        "token",
        "secret",
        "key",
        "hmac",
        "auth",
        "password",
    ];
    // Names from `http::HeaderName` are lowercase already: no copy for them.
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    };
    let bytes = name.as_bytes();
    // one pass over the name: a fragment is compared only where its first byte is
    NAMES.contains(&&*name)
        || (0..bytes.len()).any(|at| {
            let rest = &bytes[at..];
            FRAGMENTS
                .iter()
                .any(|f| f.as_bytes()[0] == rest[0] && rest.starts_with(f.as_bytes()))
        })
}

fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serialising strings and string maps into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn credentials_and_signatures_are_sensitive_in_any_case() {
        for name in [
            "authorization",
            "Cookie",
            "x-hub-signature-256",
            "X-Api-Key",
            "x-gitlab-token",
            "x-shopify-hmac-sha256",
        ] {
            assert!(is_sensitive_header(name), "{name}");
        }
        for name in [
            "content-type",
            "X-GitHub-Event",
            "x-github-delivery",
            "user-agent",
        ] {
            assert!(!is_sensitive_header(name), "{name}");
        }
    }

    fn received_at(millis: u64) -> Delivery {
        Delivery {
            webhook_id: Arc::from("w"),
            request_id: Uuid::nil(),
            headers: Arc::new(HeaderMap::new()),
            query: None,
            body: Bytes::new(),
            received_at: UNIX_EPOCH + Duration::from_millis(millis) + Duration::from_micros(999),
            data_type: DataType::Json,
        }
    }

    /// Always three fraction digits, as JavaScript's `Date.prototype.toISOString` writes
    /// them: a transformation comparing the two strings must see the same text.
    #[test]
    fn received_at_has_three_fraction_digits_like_javascript() {
        assert_eq!(
            received_at(1_796_000_000_250).received_at_rfc3339(),
            "2026-11-30T00:53:20.250Z"
        );
        assert_eq!(
            received_at(1_796_000_000_000).received_at_rfc3339(),
            "2026-11-30T00:53:20.000Z"
        );
        assert_eq!(
            received_at(1_796_000_000_007).received_at_millis(),
            1_796_000_000_007
        );
    }
}
