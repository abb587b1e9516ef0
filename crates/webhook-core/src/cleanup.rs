//! `credential_cleanup`: the original's masking of credential-looking fields in the JSON
//! payload and headers before destinations see them.
//!
//! The original applies it to every webhook unless switched off; here it applies where a
//! webhook's entry has the key (`{"credential_cleanup": {}}` is enough), because everywhere
//! else destinations get the exact bytes received. Where it applies, the JSON body is
//! re-serialized (compact, keys in their original order) with every primitive value under a
//! credential key replaced by `"***REDACTED***"` (`mode: "mask"`) or dropped (`"remove"`);
//! objects and arrays under such keys are searched, not masked, as the original does. It
//! runs before the spool, so credentials are not kept at rest either.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

/// What masked values become.
pub const MASK: &str = "***REDACTED***";

/// Names that always count as credentials (compared lower-cased), besides any name that
/// contains one of [`CREDENTIAL_PARTS`].
const CREDENTIAL_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "authorization",
    "auth",
    "credential",
    "credentials",
    "private_key",
    "privatekey",
    "api_secret",
    "client_secret",
    "bearer",
    "x-api-key",
    "x-auth-token",
    "x-access-token",
    "session_id",
    "sessionid",
    "session_token",
    "csrf_token",
    "csrf",
    "oauth_token",
    "oauth_secret",
    "consumer_secret",
    "token_secret",
];

/// A name containing one of these counts as a credential (so `author` and `monkey` do,
/// as in the original).
const CREDENTIAL_PARTS: &[&str] = &["password", "secret", "token", "key", "credential", "auth"];

/// Containers deeper than this are passed on unchanged (as the original's limit).
const MAX_DEPTH: usize = 100;

/// The `credential_cleanup` key of a webhook entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupConfig {
    /// `false` switches it off (default `true`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// `mask` (default) or `remove`, any case.
    #[serde(default)]
    pub mode: CleanupMode,
    /// More names to treat as credentials (exact, any case).
    #[serde(default)]
    pub fields: Vec<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// What happens to a credential's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CleanupMode {
    /// Replaced by [`MASK`].
    #[default]
    Mask,
    /// Left out.
    Remove,
}

impl<'de> Deserialize<'de> for CleanupMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "mask" => Ok(Self::Mask),
            "remove" => Ok(Self::Remove),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not `mask` or `remove`"
            ))),
        }
    }
}

/// A webhook's cleanup, built from its config.
#[derive(Debug, Clone)]
pub(crate) struct CredentialCleanup {
    mode: CleanupMode,
    fields: Vec<String>,
}

impl CredentialCleanup {
    /// `None` when `config` switches it off.
    pub(crate) fn new(config: CleanupConfig) -> Option<Self> {
        config.enabled.then(|| Self {
            mode: config.mode,
            fields: config
                .fields
                .into_iter()
                .map(|f| f.trim().to_lowercase())
                .collect(),
        })
    }

    fn is_credential(&self, name: &str) -> bool {
        let name = name.trim().to_lowercase();
        CREDENTIAL_NAMES.contains(&name.as_str())
            || CREDENTIAL_PARTS.iter().any(|part| name.contains(part))
            || self.fields.contains(&name)
    }

    /// The headers with credential-named ones masked or removed.
    pub(crate) fn headers(&self, headers: &HeaderMap) -> Option<HeaderMap> {
        if !headers.keys().any(|name| self.is_credential(name.as_str())) {
            return None;
        }
        let mut cleaned = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if !self.is_credential(name.as_str()) {
                cleaned.append(name, value.clone());
            } else if self.mode == CleanupMode::Mask {
                cleaned.append(name, HeaderValue::from_static(MASK));
            }
        }
        Some(cleaned)
    }

    /// The JSON body cleaned, or `None` when it has nothing to clean (or is not an object
    /// or array, which the original leaves alone too).
    pub(crate) fn body(&self, body: &[u8]) -> Option<Bytes> {
        let mut value: Value = serde_json::from_slice(body).ok()?;
        if !value.is_object() && !value.is_array() {
            return None;
        }
        if !self.clean(&mut value, 0) {
            return None;
        }
        serde_json::to_vec(&value).ok().map(Bytes::from)
    }

    /// Clean `value` in place; whether anything changed.
    fn clean(&self, value: &mut Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match value {
            Value::Object(map) => {
                let mut changed = false;
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    let credential = self.is_credential(&key);
                    let Some(inner) = map.get_mut(&key) else {
                        continue;
                    };
                    if inner.is_object() || inner.is_array() {
                        changed |= self.clean(inner, depth + 1);
                    } else if credential {
                        changed = true;
                        match self.mode {
                            CleanupMode::Mask => *inner = Value::String(MASK.to_owned()),
                            CleanupMode::Remove => {
                                map.shift_remove(&key);
                            }
                        }
                    }
                }
                changed
            }
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.clean(item, depth + 1);
                }
                changed
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleanup(mode: CleanupMode, fields: &[&str]) -> CredentialCleanup {
        CredentialCleanup::new(CleanupConfig {
            enabled: true,
            mode,
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn the_originals_observed_example() {
        let body = br#"{"key":"value","monkey":"banana","author":"me","token":"abc","n":1}"#;
        let masked = cleanup(CleanupMode::Mask, &[]).body(body).unwrap();
        assert_eq!(
            &masked[..],
            br#"{"key":"***REDACTED***","monkey":"***REDACTED***","author":"***REDACTED***","token":"***REDACTED***","n":1}"#
        );
        let removed = cleanup(CleanupMode::Remove, &[]).body(body).unwrap();
        assert_eq!(&removed[..], br#"{"n":1}"#);
    }

    #[test]
    fn containers_under_credential_keys_are_searched_not_masked() {
        let body = br#"{"secret":["a","b"],"user":{"name":"x","PassWord":"p","ssn":"1"},"list":[{"api_key":3}]}"#;
        let cleaned = cleanup(CleanupMode::Mask, &["SSN"]).body(body).unwrap();
        assert_eq!(
            &cleaned[..],
            br#"{"secret":["a","b"],"user":{"name":"x","PassWord":"***REDACTED***","ssn":"***REDACTED***"},"list":[{"api_key":"***REDACTED***"}]}"#
        );
        assert!(
            cleanup(CleanupMode::Mask, &[])
                .body(br#"{"a":1}"#)
                .is_none()
        );
        assert!(
            cleanup(CleanupMode::Mask, &[])
                .body(br#""token""#)
                .is_none()
        );
        assert!(cleanup(CleanupMode::Mask, &[]).body(b"not json").is_none());
    }

    #[test]
    fn headers_are_masked_or_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer x"));
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("user-agent", HeaderValue::from_static("ua"));
        headers.insert("x-hub-signature-256", HeaderValue::from_static("sha256=ab"));
        let masked = cleanup(CleanupMode::Mask, &[]).headers(&headers).unwrap();
        assert_eq!(masked["authorization"], MASK);
        assert_eq!(masked["x-api-key"], MASK);
        assert_eq!(masked["user-agent"], "ua");
        assert_eq!(masked["x-hub-signature-256"], "sha256=ab");
        let removed = cleanup(CleanupMode::Remove, &[]).headers(&headers).unwrap();
        assert!(!removed.contains_key("authorization") && removed.contains_key("user-agent"));
        assert_eq!(
            CleanupMode::deserialize(serde_json::json!("MASK")).ok(),
            Some(CleanupMode::Mask)
        );
        assert!(CleanupMode::deserialize(serde_json::json!("hide")).is_err());
    }
}
