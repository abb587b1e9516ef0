//! `recaptcha`: a Google reCAPTCHA token (v2, or v3 with a minimum score), checked
//! against the siteverify endpoint with the client address our trusted-proxy logic
//! found (never a raw `X-Forwarded-For`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use webhook_core::config::{Secret, de};
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};
use webhook_http_client::HttpClient;

const GOOGLE: &str = "https://www.google.com/recaptcha/api/siteverify";
const TIMEOUT: Duration = Duration::from_secs(5);
/// Body keys the original looks in for the token, after `token_field`.
const BODY_KEYS: &[&str] = &["recaptcha_token", "recaptcha", "g-recaptcha-response"];

/// The `recaptcha` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecaptchaConfig {
    /// The site's secret key.
    pub secret_key: Secret,
    /// `v3` (default: a score is required) or `v2`.
    #[serde(default = "default_version")]
    pub version: String,
    /// Where the token is: `header` (default) or `body` (a JSON or form field).
    #[serde(default = "default_source")]
    pub token_source: String,
    /// The header or body field with the token (default `X-Recaptcha-Token`).
    #[serde(default = "default_field")]
    pub token_field: String,
    /// v3: the lowest score accepted (default 0.5).
    #[serde(default = "default_score", deserialize_with = "de::number")]
    pub min_score: f64,
    /// The siteverify endpoint (default Google's; a setting so tests can use their own).
    #[serde(default = "default_url")]
    pub verify_url: String,
}

fn default_version() -> String {
    "v3".to_owned()
}
fn default_source() -> String {
    "header".to_owned()
}
fn default_field() -> String {
    "X-Recaptcha-Token".to_owned()
}
fn default_score() -> f64 {
    0.5
}
fn default_url() -> String {
    GOOGLE.to_owned()
}

/// See the module docs.
#[derive(Debug)]
pub struct Recaptcha {
    secret: Secret,
    v3: bool,
    from_body: bool,
    field: String,
    min_score: f64,
    url: http::Uri,
    client: HttpClient,
}

#[derive(Deserialize)]
struct Answer {
    success: bool,
    #[serde(default)]
    score: Option<f64>,
}

impl Validator for Recaptcha {
    const KEY: &'static str = "recaptcha";
    type Config = RecaptchaConfig;

    fn build(config: RecaptchaConfig) -> Result<Self, BuildError> {
        if config.secret_key.expose().is_empty() {
            return Err(BuildError::key("secret_key", "must not be empty"));
        }
        let v3 = match config.version.as_str() {
            "v3" => true,
            "v2" => false,
            other => {
                return Err(BuildError::key(
                    "version",
                    format!("`{other}` is not v2 or v3"),
                ));
            }
        };
        let from_body = match config.token_source.as_str() {
            "header" => false,
            "body" => true,
            other => {
                return Err(BuildError::key(
                    "token_source",
                    format!("`{other}` is not header or body"),
                ));
            }
        };
        if from_body {
            // any field name goes
        } else if http::HeaderName::from_bytes(config.token_field.as_bytes()).is_err() {
            return Err(BuildError::key("token_field", "is not a valid header name"));
        }
        if !(0.0..=1.0).contains(&config.min_score) {
            return Err(BuildError::key("min_score", "must be between 0.0 and 1.0"));
        }
        let url: http::Uri = config
            .verify_url
            .parse()
            .ok()
            .filter(|u: &http::Uri| matches!(u.scheme_str(), Some("http" | "https")))
            .ok_or_else(|| BuildError::key("verify_url", "must be an http(s) URL"))?;
        let client = HttpClient::new().map_err(|e| BuildError::other(e.to_string()))?;
        Ok(Self {
            secret: config.secret_key,
            v3,
            from_body,
            field: config.token_field,
            min_score: config.min_score,
            url,
            client,
        })
    }

    fn needs_body(&self) -> bool {
        self.from_body
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let Some(token) = self.token(request) else {
            return Check::Reject(Rejection::unauthorized("recaptcha_missing"));
        };
        Check::Pending(Box::pin(async move {
            self.verify(&token, request.client_ip).await?;
            Ok(None)
        }))
    }
}

impl Recaptcha {
    fn token(&self, request: &RequestView<'_>) -> Option<String> {
        if !self.from_body {
            let value = request.headers.get(self.field.as_str())?.to_str().ok()?;
            return Some(value.trim().to_owned()).filter(|t| !t.is_empty());
        }
        let keys = std::iter::once(self.field.as_str()).chain(BODY_KEYS.iter().copied());
        if let Ok(serde_json::Value::Object(map)) =
            serde_json::from_slice::<serde_json::Value>(request.body)
        {
            return keys
                .filter_map(|k| map.get(k)?.as_str().map(str::to_owned))
                .find(|t| !t.is_empty());
        }
        let form: Vec<(String, String)> = form_urlencoded::parse(request.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        keys.filter_map(|k| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .find(|t| !t.is_empty())
    }

    async fn verify(&self, token: &str, client: std::net::IpAddr) -> Result<(), Rejection> {
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("secret", self.secret.expose())
                .append_pair("response", token);
            if !client.is_unspecified() {
                form.append_pair("remoteip", &client.to_string());
            }
            form.finish()
        };
        let request = http::Request::post(self.url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::new(Bytes::from(form)))
            .map_err(|_| Rejection::unauthorized("recaptcha_unavailable"))?;
        let answer = match self.client.send(request, TIMEOUT).await {
            Ok(answer) if answer.status().is_success() => answer,
            Ok(_) | Err(_) => {
                tracing::warn!(url = %self.url, "recaptcha: the verify endpoint did not answer");
                return Err(Rejection::unauthorized("recaptcha_unavailable"));
            }
        };
        let answer: Answer = serde_json::from_slice(answer.body())
            .map_err(|_| Rejection::unauthorized("recaptcha_unavailable"))?;
        if !answer.success {
            return Err(Rejection::unauthorized("recaptcha_failed"));
        }
        if self.v3 && answer.score.is_none_or(|s| s < self.min_score) {
            return Err(Rejection::unauthorized("recaptcha_low_score"));
        }
        Ok(())
    }
}
