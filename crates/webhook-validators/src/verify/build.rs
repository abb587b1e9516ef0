//! Building `verify` and `hmac`: a scheme (preset or spelled out) and its secrets become a
//! [`Verifier`]; the presets' handshakes and delivery ids are chosen here too.

use hmac::{Hmac, KeyInit};
use http::HeaderName;
use sha2::{Digest, Sha256};
use webhook_core::BuildError;
use webhook_core::config::Secret;

use super::check::{Keyed, Verifier};
use super::dedup::Dedup;
use super::handshake::Handshake;
use super::scheme::{Piece, SchemeConfig, SignatureFormat, decode_key, parse_signed};
use super::{DedupConfig, Provider, Verify, VerifyConfig};
use crate::HmacAlgorithm;

/// Tolerance of timestamped schemes that do not set one.
const DEFAULT_TOLERANCE: u64 = 300;

fn header_name(key: &str, name: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| BuildError::key(key, format!("`{name}` is not a valid header name")))
}

impl Verifier {
    /// Build the check of `scheme` (named `name` in errors) with `secrets` (each with the
    /// config key it came from); `tolerance` and `public_url` as the webhook sets them.
    pub(crate) fn build(
        name: &str,
        scheme: SchemeConfig,
        secrets: &[(String, &Secret)],
        tolerance: Option<u64>,
        public_url: Option<String>,
    ) -> Result<Self, BuildError> {
        if secrets.is_empty() {
            return Err(BuildError::key("secret", "set `secret` or `secrets`"));
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (key_name, secret) in secrets {
            if scheme.signature_format == SignatureFormat::Token {
                if secret.expose().is_empty() {
                    return Err(BuildError::key(key_name.clone(), "must not be empty"));
                }
                keys.push(Keyed::Token(
                    Sha256::digest(secret.expose().as_bytes()).into(),
                ));
                continue;
            }
            let key = decode_key(secret.expose(), scheme.key_encoding)
                .map_err(|why| BuildError::key(key_name.clone(), why))?;
            let invalid = |_| BuildError::key(key_name.clone(), "cannot be used as an HMAC key");
            keys.push(match scheme.algorithm {
                HmacAlgorithm::Sha1 => Keyed::Sha1(Hmac::new_from_slice(&key).map_err(invalid)?),
                HmacAlgorithm::Sha256 => {
                    Keyed::Sha256(Hmac::new_from_slice(&key).map_err(invalid)?)
                }
                HmacAlgorithm::Sha512 => {
                    Keyed::Sha512(Hmac::new_from_slice(&key).map_err(invalid)?)
                }
            });
        }
        let pieces = parse_signed(&scheme.signed)?;
        let needs_url = pieces.contains(&Piece::Url);
        if needs_url && public_url.as_deref().is_none_or(str::is_empty) {
            return Err(BuildError::key(
                "public_url",
                format!("is required by `{name}`: the URL the sender posts to"),
            ));
        }
        let covers_body = pieces.contains(&Piece::Body) || pieces.contains(&Piece::FormParams);
        if scheme.signature_format != SignatureFormat::Token
            && !covers_body
            && !scheme.unsigned_body
        {
            return Err(BuildError::key(
                "scheme.signed",
                "does not cover the body (no {body} or {form_params}): any body would pass with a valid signature; add {body}, or set `unsigned_body: true` to mean it",
            ));
        }
        let has_timestamp = scheme.timestamp_header.is_some() || scheme.timestamp_key.is_some();
        if pieces.contains(&Piece::Timestamp) && !has_timestamp {
            return Err(BuildError::key(
                "scheme.signed",
                "uses {t} but the scheme has no `timestamp_header` or `timestamp_key`",
            ));
        }
        if pieces.contains(&Piece::Id) && scheme.id_header.is_none() {
            return Err(BuildError::key(
                "scheme.signed",
                "uses {id} but the scheme has no `id_header`",
            ));
        }
        if scheme.signature_format == SignatureFormat::KeyValue && scheme.signature_keys.is_empty()
        {
            return Err(BuildError::key(
                "scheme.signature_keys",
                "is required with `key_value`",
            ));
        }
        let tolerance = tolerance
            .or(scheme.tolerance)
            .or(has_timestamp.then_some(DEFAULT_TOLERANCE));
        if tolerance.is_some() && !has_timestamp {
            return Err(BuildError::key(
                "tolerance",
                format!("`{name}` signs no timestamp"),
            ));
        }
        Ok(Self {
            format: scheme.signature_format,
            prefix: scheme.signature_prefix.into_bytes(),
            prefix_optional: false,
            signature_keys: scheme
                .signature_keys
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            pair_separator: scheme.pair_separator.into_bytes(),
            timestamp_key: scheme.timestamp_key.map(String::into_bytes),
            signature_header: header_name("scheme.signature_header", &scheme.signature_header)?,
            timestamp_header: scheme
                .timestamp_header
                .as_deref()
                .map(|h| header_name("scheme.timestamp_header", h))
                .transpose()?,
            id_header: scheme
                .id_header
                .as_deref()
                .map(|h| header_name("scheme.id_header", h))
                .transpose()?,
            pieces,
            keys,
            encoding: scheme.encoding,
            tolerance,
            public_url,
        })
    }
}

impl Verify {
    pub(super) fn from_config(config: VerifyConfig) -> Result<Self, BuildError> {
        let provider = config.provider;
        let (name, scheme) = match (config.provider, config.scheme) {
            (Some(provider), None) => (provider.name().to_owned(), provider.scheme()),
            (None, Some(scheme)) => ("custom".to_owned(), scheme),
            (Some(_), Some(_)) => {
                return Err(BuildError::key(
                    "scheme",
                    "set `provider` or `scheme`, not both",
                ));
            }
            (None, None) => {
                return Err(BuildError::key(
                    "provider",
                    "set `provider` (a preset) or `scheme`",
                ));
            }
        };
        let mut secrets: Vec<(String, &Secret)> = Vec::new();
        if let Some(secret) = &config.secret {
            secrets.push(("secret".to_owned(), secret));
        }
        for (i, secret) in config.secrets.iter().enumerate() {
            secrets.push((format!("secrets[{i}]"), secret));
        }
        let verifier =
            Verifier::build(&name, scheme, &secrets, config.tolerance, config.public_url)?;
        let dedup_source = match &config.dedup {
            None | Some(DedupConfig::Enabled(false)) => None,
            Some(DedupConfig::Enabled(true)) => {
                Some(provider.and_then(Provider::delivery_id).ok_or_else(|| {
                    BuildError::key(
                        "dedup",
                        format!("`{name}` has no delivery id: set `header` or `json_pointer`"),
                    )
                })?)
            }
            Some(DedupConfig::Explicit(source)) => {
                let mut source = source.clone();
                if source.header.is_none()
                    && source.json_pointer.is_none()
                    && let Some(preset) = provider.and_then(Provider::delivery_id)
                {
                    source.header = preset.header;
                    source.json_pointer = preset.json_pointer;
                }
                Some(source)
            }
        };
        let dedup = dedup_source
            .map(|source| Dedup::build(&source, verifier.tolerance))
            .transpose()?;
        let handshake = match provider {
            Some(Provider::Slack) => Some(Handshake::Slack),
            Some(Provider::Zoom) => Some(Handshake::Zoom),
            _ => None,
        };
        Ok(Self {
            name,
            verifier,
            handshake,
            dedup,
        })
    }
}
