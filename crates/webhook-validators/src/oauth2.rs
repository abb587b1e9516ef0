//! `oauth2`: a bearer access token, checked at an RFC 7662 introspection endpoint
//! (positive answers cached briefly) or locally as a JWT; with `required_scope`, its
//! scopes must include those.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use webhook_core::config::Secret;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};
use webhook_http_client::HttpClient;

use crate::jwt::{Jwt, JwtConfig};

const TIMEOUT: Duration = Duration::from_secs(5);
/// How long an `active` answer is trusted (less when the token expires sooner).
const CACHE_FOR: Duration = Duration::from_secs(60);
const MAX_CACHED: usize = 10_000;

/// `required_scope`: one scope or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scopes {
    /// `"read write"` (space-separated).
    One(String),
    /// `["read", "write"]`.
    List(Vec<String>),
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes::List(Vec::new())
    }
}

/// The `oauth2` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The `Authorization` scheme (default `Bearer`).
    #[serde(default = "default_token_type")]
    pub token_type: String,
    /// RFC 7662 introspection endpoint: tokens are checked there.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// The gateway's client id at the endpoint (HTTP Basic with `client_secret`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The gateway's client secret at the endpoint.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Scopes the token must have.
    #[serde(default)]
    pub required_scope: Scopes,
    /// `false` accepts any token (default `true`), as the original.
    #[serde(default = "yes")]
    pub validate_token: bool,
    /// Without an endpoint: the key of locally checked JWTs (shared secret or PEM).
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    /// The algorithms local JWTs may use (default HS256 and RS256; those the key suits).
    #[serde(default = "default_algorithms")]
    pub jwt_algorithms: Vec<String>,
    /// Required `aud` of local JWTs.
    #[serde(default)]
    pub audience: Option<String>,
    /// Required `iss` of local JWTs.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Check `exp` of local JWTs (default `true`).
    #[serde(default = "yes")]
    pub verify_exp: bool,
}

fn default_token_type() -> String {
    "Bearer".to_owned()
}
fn yes() -> bool {
    true
}
fn default_algorithms() -> Vec<String> {
    vec!["HS256".to_owned(), "RS256".to_owned()]
}

#[derive(Debug)]
enum Mode {
    AnyToken,
    Introspect(Box<Introspector>),
    Local(Vec<Jwt>),
}

#[derive(Debug)]
struct Introspector {
    url: http::Uri,
    basic: Option<String>,
    client: HttpClient,
    /// sha256(token) → trusted until.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
}

/// See the module docs.
#[derive(Debug)]
pub struct OAuth2 {
    scheme: String,
    required: Vec<String>,
    mode: Mode,
}

#[derive(Deserialize)]
struct Introspection {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
}

impl Validator for OAuth2 {
    const KEY: &'static str = "oauth2";
    type Config = OAuth2Config;

    fn build(config: OAuth2Config) -> Result<Self, BuildError> {
        let required = match config.required_scope {
            Scopes::One(text) => text.split_whitespace().map(str::to_owned).collect(),
            Scopes::List(list) => list,
        };
        let mode = if !config.validate_token {
            tracing::warn!("oauth2: validate_token is false: any bearer token is accepted");
            Mode::AnyToken
        } else if let Some(endpoint) = config.introspection_endpoint {
            let url: http::Uri = endpoint
                .parse()
                .ok()
                .filter(|u: &http::Uri| matches!(u.scheme_str(), Some("http" | "https")))
                .ok_or_else(|| {
                    BuildError::key("introspection_endpoint", "must be an http(s) URL")
                })?;
            let basic = match (config.client_id, config.client_secret) {
                (Some(id), Some(secret)) => Some(format!(
                    "Basic {}",
                    BASE64.encode(format!("{id}:{}", secret.expose()))
                )),
                (None, None) => None,
                _ => {
                    return Err(BuildError::key(
                        "client_secret",
                        "give both client_id and client_secret, or neither",
                    ));
                }
            };
            Mode::Introspect(Box::new(Introspector {
                url,
                basic,
                client: HttpClient::new().map_err(|e| BuildError::other(e.to_string()))?,
                cache: Mutex::new(HashMap::new()),
            }))
        } else if let Some(secret) = config.jwt_secret {
            let mut checks = Vec::new();
            for algorithm in &config.jwt_algorithms {
                let built = Jwt::build(JwtConfig {
                    secret: secret.clone(),
                    algorithm: algorithm.clone(),
                    issuer: config.issuer.clone(),
                    audience: config.audience.clone(),
                    verify_exp: config.verify_exp,
                });
                // an algorithm the key does not suit (a PEM for HS*, a secret for RS*) is
                // left out; one that does not exist is an error
                match built {
                    Ok(check) => checks.push(check),
                    Err(err) if err.key == "algorithm" => {
                        return Err(BuildError::key("jwt_algorithms", err.message));
                    }
                    Err(_) => {}
                }
            }
            if checks.is_empty() {
                return Err(BuildError::key(
                    "jwt_secret",
                    "suits none of `jwt_algorithms` (a shared secret for HS*, a PEM public key for RS*/PS*/ES*)",
                ));
            }
            Mode::Local(checks)
        } else {
            return Err(BuildError::other(
                "give `introspection_endpoint` or `jwt_secret` (or `validate_token: false`)",
            ));
        };
        Ok(Self {
            scheme: config.token_type,
            required,
            mode,
        })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        vec![http::header::AUTHORIZATION]
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let Some(token) = self.token(request) else {
            return Check::Reject(Rejection::unauthorized("oauth2_missing"));
        };
        match &self.mode {
            Mode::AnyToken => Check::Pass,
            Mode::Local(checks) => self.local(checks, token).into(),
            Mode::Introspect(introspector) => {
                let token = token.to_owned();
                Check::Pending(Box::pin(async move {
                    self.introspect(introspector, &token).await?;
                    Ok(None)
                }))
            }
        }
    }
}

impl OAuth2 {
    fn token<'r>(&self, request: &'r RequestView<'_>) -> Option<&'r str> {
        let value = request
            .headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case(&self.scheme) && !token.is_empty()).then_some(token)
    }

    fn has_scopes(&self, granted: &[&str]) -> bool {
        self.required.iter().all(|s| granted.contains(&s.as_str()))
    }

    fn local(&self, checks: &[Jwt], token: &str) -> Result<(), Rejection> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Rejection::unauthorized("jwt_invalid"))?;
        let check = checks
            .iter()
            .find(|c| c.takes(header.alg))
            .ok_or_else(|| Rejection::unauthorized("jwt_wrong_algorithm"))?;
        let claims = check.claims(token)?;
        let mut granted: Vec<&str> = claims
            .get("scope")
            .and_then(|s| s.as_str())
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default();
        if let Some(list) = claims.get("scp").and_then(|s| s.as_array()) {
            granted.extend(list.iter().filter_map(|s| s.as_str()));
        }
        if self.has_scopes(&granted) {
            Ok(())
        } else {
            Err(Rejection::unauthorized("oauth2_insufficient_scope"))
        }
    }

    async fn introspect(&self, introspector: &Introspector, token: &str) -> Result<(), Rejection> {
        let Introspector {
            url,
            basic,
            client,
            cache,
        } = introspector;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        {
            let cache = match cache.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            if cache.get(&key).is_some_and(|until| *until > now) {
                return Ok(());
            }
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let mut request = http::Request::post(url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        if let Some(basic) = basic {
            request = request.header(http::header::AUTHORIZATION, basic.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| Rejection::unauthorized("oauth2_unavailable"))?;
        let answer = match client.send(request, TIMEOUT).await {
            Ok(answer) if answer.status().is_success() => answer,
            _ => {
                tracing::warn!(url = %url, "oauth2: the introspection endpoint did not answer");
                return Err(Rejection::unauthorized("oauth2_unavailable"));
            }
        };
        let answer: Introspection = serde_json::from_slice(answer.body())
            .map_err(|_| Rejection::unauthorized("oauth2_unavailable"))?;
        if !answer.active {
            return Err(Rejection::unauthorized("oauth2_inactive"));
        }
        let granted: Vec<&str> = answer
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default();
        if !self.has_scopes(&granted) {
            return Err(Rejection::unauthorized("oauth2_insufficient_scope"));
        }
        let mut until = now + CACHE_FOR;
        if let Some(exp) = answer.exp {
            let unix_now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if exp <= unix_now {
                return Err(Rejection::unauthorized("oauth2_expired"));
            }
            until = until.min(now + Duration::from_secs(exp - unix_now));
        }
        let mut cache = match cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, until| *until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, until);
        Ok(())
    }
}
