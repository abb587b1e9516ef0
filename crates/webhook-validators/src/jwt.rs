//! `jwt`: a bearer token signed with the configured key, checked with `jsonwebtoken`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::IgnoredAny;
use webhook_core::config::Secret;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

/// The `jwt` key: `{secret, algorithm = "HS256", issuer?, audience?}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// HS*: the shared secret; RS*/PS*/ES*/EdDSA: the public key in PEM.
    pub secret: Secret,
    /// `HS256` (default), `HS384`, `HS512`, `RS256`…`RS512`, `PS256`…`PS512`, `ES256`,
    /// `ES384`, `EdDSA`. `none` is refused.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// Required `iss`, if set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Check (and require) `exp` (default `true`); `false` accepts tokens without `exp` or
    /// past it, as the original's key does.
    #[serde(default = "verify_exp_by_default")]
    pub verify_exp: bool,
}

fn verify_exp_by_default() -> bool {
    true
}

/// A PEM block or a JWK, which an HS* `secret` must not be.
fn looks_like_a_public_key(secret: &[u8]) -> bool {
    let text = String::from_utf8_lossy(secret);
    let text = text.trim_start();
    text.starts_with("-----BEGIN") || (text.starts_with('{') && text.contains("\"kty\""))
}

fn default_algorithm() -> String {
    "HS256".to_owned()
}

/// `jwt`: `Authorization: Bearer <token>`; the signature must verify with the configured
/// key and algorithm (no other algorithm is accepted, `none` never), `exp` must be present
/// and not past (60 s leeway), `iss`/`aud` must match when configured.
#[derive(Clone)]
pub struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Validator for Jwt {
    const KEY: &'static str = "jwt";
    type Config = JwtConfig;

    fn build(config: JwtConfig) -> Result<Self, BuildError> {
        if config.algorithm.eq_ignore_ascii_case("none") {
            return Err(BuildError::key(
                "algorithm",
                "`none` (unsigned tokens) is refused",
            ));
        }
        let algorithm: Algorithm = config.algorithm.parse().map_err(|_| {
            BuildError::key(
                "algorithm",
                format!(
                    "`{}` is not a JWT algorithm (HS256, RS256, ES256, EdDSA, …)",
                    config.algorithm
                ),
            )
        })?;
        let secret = config.secret.expose().as_bytes();
        if secret.is_empty() {
            return Err(BuildError::key("secret", "must not be empty"));
        }
        let bad_key = |e: jsonwebtoken::errors::Error| {
            BuildError::key(
                "secret",
                format!("is not a valid key for {algorithm:?}: {e}"),
            )
        };
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                if looks_like_a_public_key(secret) {
                    // whoever has the public key could sign tokens with it as the secret
                    return Err(BuildError::key(
                        "secret",
                        format!(
                            "looks like a PEM or JWK key, not a shared secret: set `algorithm` to the key's algorithm (e.g. RS256); {algorithm:?} would let anyone holding the public key forge tokens"
                        ),
                    ));
                }
                DecodingKey::from_secret(secret).map_err(bad_key)?
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(secret).map_err(bad_key)?,
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(secret).map_err(bad_key)?
            }
            Algorithm::EdDSA => DecodingKey::from_ed_pem(secret).map_err(bad_key)?,
            other => {
                return Err(BuildError::key(
                    "algorithm",
                    format!("`{other:?}` is not supported"),
                ));
            }
        };
        let mut validation = Validation::new(algorithm);
        // a token is not valid before its `nbf`
        validation.validate_nbf = true;
        if !config.verify_exp {
            validation.validate_exp = false;
            validation.required_spec_claims.remove("exp");
        }
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        vec![http::header::AUTHORIZATION]
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let token = request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..7)
                    .filter(|s| s.eq_ignore_ascii_case("bearer "))
                    .map(|_| v[7..].trim())
            });
        let Some(token) = token else {
            return Check::Reject(Rejection::unauthorized("jwt_missing"));
        };
        match jsonwebtoken::decode::<IgnoredAny>(token, &self.key, &self.validation) {
            Ok(_) => Check::Pass,
            Err(err) => Check::Reject(Rejection::unauthorized(reason(&err))),
        }
    }
}

impl Jwt {
    /// Whether this validator checks tokens signed with `algorithm`.
    pub(crate) fn takes(&self, algorithm: Algorithm) -> bool {
        self.validation.algorithms.contains(&algorithm)
    }

    /// The claims of `token` once its signature and registered claims hold.
    pub(crate) fn claims(&self, token: &str) -> Result<serde_json::Value, Rejection> {
        jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| Rejection::unauthorized(reason(&err)))
    }
}

fn reason(err: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "jwt_expired",
        ErrorKind::InvalidIssuer => "jwt_wrong_issuer",
        ErrorKind::InvalidAudience => "jwt_wrong_audience",
        ErrorKind::InvalidAlgorithm => "jwt_wrong_algorithm",
        ErrorKind::MissingRequiredClaim(_) => "jwt_claim_missing",
        ErrorKind::ImmatureSignature => "jwt_not_yet_valid",
        ErrorKind::InvalidSignature => "jwt_signature_mismatch",
        _ => "jwt_invalid",
    }
}
