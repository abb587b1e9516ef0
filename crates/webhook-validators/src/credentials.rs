//! The original's simple credential checks: `basic_auth`, `header_auth`, `query_auth`.
//! Each compares SHA-256 digests in constant time, so neither the secret nor its length
//! leaks through timing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderName;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use webhook_core::config::Secret;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn matches(expected: &[u8; 32], given: &[u8]) -> bool {
    bool::from(expected.ct_eq(&digest(given)))
}

/// An API key to compare: its digest, lower-cased first when the comparison ignores case
/// (the original's default for `header_auth` and `query_auth`).
#[derive(Debug, Clone)]
struct ApiKey {
    expected: [u8; 32],
    case_sensitive: bool,
}

impl ApiKey {
    fn new(key: &Secret, case_sensitive: bool) -> Self {
        let expected = if case_sensitive {
            digest(key.expose().as_bytes())
        } else {
            digest(key.expose().to_lowercase().as_bytes())
        };
        Self {
            expected,
            case_sensitive,
        }
    }

    fn matches(&self, given: &[u8]) -> bool {
        if self.case_sensitive {
            return matches(&self.expected, given);
        }
        match std::str::from_utf8(given) {
            Ok(text) => matches(&self.expected, text.to_lowercase().as_bytes()),
            Err(_) => false,
        }
    }
}

fn non_empty(key: &str, secret: &Secret) -> Result<(), BuildError> {
    if secret.expose().is_empty() {
        return Err(BuildError::key(key, "must not be empty"));
    }
    Ok(())
}

/// The `basic_auth` key: `{username, password}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

/// `basic_auth`: `Authorization: Basic base64(username:password)`.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    expected: [u8; 32],
}

impl Validator for BasicAuth {
    const KEY: &'static str = "basic_auth";
    type Config = BasicAuthConfig;

    fn build(config: BasicAuthConfig) -> Result<Self, BuildError> {
        non_empty("password", &config.password)?;
        if config.username.is_empty() || config.username.contains(':') {
            return Err(BuildError::key(
                "username",
                "must be non-empty and without `:`",
            ));
        }
        Ok(Self {
            expected: digest(
                format!("{}:{}", config.username, config.password.expose()).as_bytes(),
            ),
        })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        vec![http::header::AUTHORIZATION]
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let Some(value) = request.headers.get(http::header::AUTHORIZATION) else {
            return Check::Reject(Rejection::unauthorized("basic_auth_missing"));
        };
        let value = value.as_bytes();
        let Some(encoded) = value
            .get(..6)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"basic "))
            .map(|_| value[6..].trim_ascii())
        else {
            return Check::Reject(Rejection::unauthorized("basic_auth_malformed"));
        };
        let mut decoded = [0u8; 512];
        match BASE64.decode_slice(encoded, &mut decoded[..]) {
            Ok(len) if matches(&self.expected, &decoded[..len]) => Check::Pass,
            Ok(_) => Check::Reject(Rejection::unauthorized("basic_auth_mismatch")),
            Err(_) => Check::Reject(Rejection::unauthorized("basic_auth_malformed")),
        }
    }
}

/// The `header_auth` key: `{header_name = "X-API-Key", api_key, case_sensitive = false}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderAuthConfig {
    /// The header carrying the key.
    #[serde(default = "default_header_name")]
    pub header_name: String,
    /// The expected key.
    pub api_key: Secret,
    /// Compare the key exactly; by default case is ignored, as the original does.
    #[serde(default)]
    pub case_sensitive: bool,
}

fn default_header_name() -> String {
    "X-API-Key".to_owned()
}

/// `header_auth`: a header must hold the API key.
#[derive(Debug, Clone)]
pub struct HeaderAuth {
    header: HeaderName,
    key: ApiKey,
}

impl Validator for HeaderAuth {
    const KEY: &'static str = "header_auth";
    type Config = HeaderAuthConfig;

    fn build(config: HeaderAuthConfig) -> Result<Self, BuildError> {
        non_empty("api_key", &config.api_key)?;
        let header = HeaderName::from_bytes(config.header_name.as_bytes()).map_err(|_| {
            BuildError::key(
                "header_name",
                format!("`{}` is not a valid header name", config.header_name),
            )
        })?;
        Ok(Self {
            header,
            key: ApiKey::new(&config.api_key, config.case_sensitive),
        })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        vec![self.header.clone()]
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        match request.headers.get(&self.header) {
            None => Check::Reject(Rejection::unauthorized("api_key_missing")),
            Some(value) if self.key.matches(value.as_bytes()) => Check::Pass,
            Some(_) => Check::Reject(Rejection::unauthorized("api_key_mismatch")),
        }
    }
}

/// The `query_auth` key: `{parameter_name = "api_key", api_key, case_sensitive = false}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryAuthConfig {
    /// The query parameter carrying the key.
    #[serde(default = "default_parameter_name")]
    pub parameter_name: String,
    /// The expected key.
    pub api_key: Secret,
    /// Compare the key exactly; by default case is ignored, as the original does.
    #[serde(default)]
    pub case_sensitive: bool,
}

fn default_parameter_name() -> String {
    "api_key".to_owned()
}

/// `query_auth`: a query parameter must hold the API key (percent-decoded).
#[derive(Debug, Clone)]
pub struct QueryAuth {
    parameter: String,
    key: ApiKey,
}

impl Validator for QueryAuth {
    const KEY: &'static str = "query_auth";
    type Config = QueryAuthConfig;

    fn build(config: QueryAuthConfig) -> Result<Self, BuildError> {
        non_empty("api_key", &config.api_key)?;
        if config.parameter_name.is_empty() {
            return Err(BuildError::key("parameter_name", "must not be empty"));
        }
        Ok(Self {
            parameter: config.parameter_name,
            key: ApiKey::new(&config.api_key, config.case_sensitive),
        })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let given = request.uri.query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == self.parameter.as_str())
                .map(|(_, value)| value)
        });
        match given {
            None => Check::Reject(Rejection::unauthorized("api_key_missing")),
            Some(value) if self.key.matches(value.as_bytes()) => Check::Pass,
            Some(_) => Check::Reject(Rejection::unauthorized("api_key_mismatch")),
        }
    }
}
