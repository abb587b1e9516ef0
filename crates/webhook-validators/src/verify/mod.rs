//! `verify`: provider signature schemes (presets or a declarative scheme), replay window,
//! secret rotation.
//!
//! ```json
//! "verify": {"provider": "stripe", "secret": "{$STRIPE_WEBHOOK_SECRET}"}
//! "verify": {"provider": "standard-webhooks", "secrets": ["whsec_new…", "whsec_old…"], "tolerance": 120}
//! "verify": {"scheme": {"signature_header": "X-Signature", "signature_prefix": "sha512=", "algorithm": "sha512"},
//!            "secret": "…"}
//! ```

mod dedup;
mod presets;
#[cfg(feature = "redis")]
mod redis_store;
mod scheme;

use std::time::UNIX_EPOCH;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderName;
use http::StatusCode;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use webhook_core::config::Secret;
use webhook_core::{Answer, BoxFuture, BuildError, Check, Rejection, RequestView, Validator};

use dedup::{Dedup, Lookup};
pub use dedup::{DedupConfig, DedupSource};
pub use presets::Provider;
pub use scheme::{KeyEncoding, SchemeConfig, SignatureEncoding, SignatureFormat};
use scheme::{Piece, decode_key, decode_signature, parse_signed};

use crate::HmacAlgorithm;

/// Tolerance of timestamped schemes that do not set one.
const DEFAULT_TOLERANCE: u64 = 300;

/// The `verify` key of a webhook entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// A preset: `github`, `stripe`, `slack`, `shopify`, `standard-webhooks`, `svix`,
    /// `gitlab`, `paddle`, `zoom`, `twilio`.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// A scheme spelled out (instead of `provider`).
    #[serde(default)]
    pub scheme: Option<SchemeConfig>,
    /// The secret.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Several secrets, any of which may match (rotation).
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// Seconds a timestamp may be off, past or future (default: the provider's, 300).
    #[serde(default, deserialize_with = "webhook_core::config::de::option_number")]
    pub tolerance: Option<u64>,
    /// The public URL senders post to (Twilio signs it): scheme, host and path as the
    /// sender sees them, in front of any proxy.
    #[serde(default)]
    pub public_url: Option<String>,
    /// De-duplicate by delivery id: `true` for the provider's, or `{header | json_pointer,
    /// window}`.
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
}

/// The answer to a delivery id seen before.
fn duplicate() -> Answer {
    Answer {
        status: StatusCode::OK,
        body: Bytes::from_static(br#"{"message":"200 OK","duplicate":true}"#),
        reason: "duplicate",
        duplicate: true,
    }
}

/// A provider's URL handshake, answered after the signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// Slack `{"type": "url_verification", "challenge": …}` → `{"challenge": …}`.
    Slack,
    /// Zoom `{"event": "endpoint.url_validation", "payload": {"plainToken": …}}` →
    /// `{"plainToken", "encryptedToken": hex(HMAC-SHA256(secret, plainToken))}`.
    Zoom,
}

#[derive(Clone)]
enum Keyed {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
    /// A token compared as a SHA-256 digest.
    Token([u8; 32]),
}

/// What a request supplies to the signed content.
struct Signed<'a> {
    body: &'a [u8],
    timestamp: &'a [u8],
    id: &'a [u8],
    url: &'a [u8],
    form: &'a [(String, String)],
}

impl Keyed {
    /// The MAC of the signed content into `out`; returns its length.
    fn tag(&self, pieces: &[Piece], signed: &Signed<'_>, out: &mut [u8; 64]) -> usize {
        fn run<M: Mac + Clone>(
            mac: &M,
            pieces: &[Piece],
            signed: &Signed<'_>,
            out: &mut [u8; 64],
        ) -> usize {
            let mut mac = mac.clone();
            for piece in pieces {
                match piece {
                    Piece::Text(text) => mac.update(text),
                    Piece::Body => mac.update(signed.body),
                    Piece::Timestamp => mac.update(signed.timestamp),
                    Piece::Id => mac.update(signed.id),
                    Piece::Url => mac.update(signed.url),
                    Piece::FormParams => {
                        for (name, value) in signed.form {
                            mac.update(name.as_bytes());
                            mac.update(value.as_bytes());
                        }
                    }
                }
            }
            let tag = mac.finalize().into_bytes();
            let len = tag.len().min(out.len());
            out[..len].copy_from_slice(&tag[..len]);
            len
        }
        match self {
            Keyed::Sha1(mac) => run(mac, pieces, signed, out),
            Keyed::Sha256(mac) => run(mac, pieces, signed, out),
            Keyed::Sha512(mac) => run(mac, pieces, signed, out),
            Keyed::Token(_) => 0,
        }
    }
}

/// `verify`: checks a provider's signature over the raw body (and timestamp, id, URL as
/// the scheme says), refuses timestamps outside the tolerance, accepts any of several
/// secrets and any of several signatures in the header. Comparisons are constant time.
#[derive(Clone)]
pub struct Verify {
    name: String,
    format: SignatureFormat,
    prefix: Vec<u8>,
    signature_keys: Vec<Vec<u8>>,
    pair_separator: Vec<u8>,
    timestamp_key: Option<Vec<u8>>,
    signature_header: HeaderName,
    timestamp_header: Option<HeaderName>,
    id_header: Option<HeaderName>,
    pieces: Vec<Piece>,
    keys: Vec<Keyed>,
    encoding: SignatureEncoding,
    tolerance: Option<u64>,
    public_url: Option<String>,
    handshake: Option<Handshake>,
    dedup: Option<Dedup>,
}

impl std::fmt::Debug for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verify")
            .field("scheme", &self.name)
            .field("secrets", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn header_name(key: &str, name: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| BuildError::key(key, format!("`{name}` is not a valid header name")))
}

impl Validator for Verify {
    const KEY: &'static str = "verify";
    type Config = VerifyConfig;

    fn build(config: VerifyConfig) -> Result<Self, BuildError> {
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
        if secrets.is_empty() {
            return Err(BuildError::key("secret", "set `secret` or `secrets`"));
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (key_name, secret) in secrets {
            if scheme.signature_format == SignatureFormat::Token {
                if secret.expose().is_empty() {
                    return Err(BuildError::key(key_name, "must not be empty"));
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
        if needs_url && config.public_url.as_deref().is_none_or(str::is_empty) {
            return Err(BuildError::key(
                "public_url",
                format!("is required by `{name}`: the URL the sender posts to"),
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
        let tolerance = config
            .tolerance
            .or(scheme.tolerance)
            .or(has_timestamp.then_some(DEFAULT_TOLERANCE));
        if tolerance.is_some() && !has_timestamp {
            return Err(BuildError::key(
                "tolerance",
                format!("`{name}` signs no timestamp"),
            ));
        }
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
            .map(|source| Dedup::build(&source, tolerance))
            .transpose()?;
        let handshake = match provider {
            Some(Provider::Slack) => Some(Handshake::Slack),
            Some(Provider::Zoom) => Some(Handshake::Zoom),
            _ => None,
        };
        Ok(Self {
            name,
            handshake,
            dedup,
            format: scheme.signature_format,
            prefix: scheme.signature_prefix.into_bytes(),
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
            public_url: config.public_url,
        })
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let key = match self.verify(request) {
            Ok(key) => key,
            Err(rejection) => return Check::Reject(rejection),
        };
        if let Some(answer) = self
            .handshake
            .and_then(|h| self.answer_handshake(h, key, request))
        {
            return Check::Answer(answer);
        }
        if let Some(dedup) = &self.dedup
            && let Some(id) = dedup.id(request)
        {
            match dedup.lookup(request.webhook_id, id) {
                Lookup::Now(true) => return Check::Answer(duplicate()),
                Lookup::Now(false) => {}
                Lookup::Later(seen) => {
                    return Check::Pending(Box::pin(async move { Ok(seen.await.then(duplicate)) }));
                }
            }
        }
        Check::Pass
    }

    fn delivered<'a>(&'a self, request: &'a RequestView<'a>) -> BoxFuture<'a, ()> {
        match &self.dedup {
            Some(dedup) => match dedup.id(request) {
                Some(id) => dedup.remember(request.webhook_id, id),
                None => Box::pin(async {}),
            },
            None => Box::pin(async {}),
        }
    }

    fn wants_delivered(&self) -> bool {
        self.dedup.is_some()
    }
}

impl Verify {
    /// Slack's and Zoom's URL handshakes (only ever after the signature checked out).
    fn answer_handshake(
        &self,
        handshake: Handshake,
        key: usize,
        request: &RequestView<'_>,
    ) -> Option<Answer> {
        let marker: &[u8] = match handshake {
            Handshake::Slack => b"url_verification",
            Handshake::Zoom => b"endpoint.url_validation",
        };
        if !request.body.windows(marker.len()).any(|w| w == marker) {
            return None;
        }
        let body: serde_json::Value = serde_json::from_slice(request.body).ok()?;
        let answer = match handshake {
            Handshake::Slack => {
                if body.get("type")?.as_str()? != "url_verification" {
                    return None;
                }
                serde_json::json!({"challenge": body.get("challenge")?.as_str()?})
            }
            Handshake::Zoom => {
                if body.get("event")?.as_str()? != "endpoint.url_validation" {
                    return None;
                }
                let plain = body.pointer("/payload/plainToken")?.as_str()?;
                let Keyed::Sha256(mac) = self.keys.get(key)? else {
                    return None;
                };
                let mut mac = mac.clone();
                mac.update(plain.as_bytes());
                let encrypted = hex::encode(mac.finalize().into_bytes());
                serde_json::json!({"plainToken": plain, "encryptedToken": encrypted})
            }
        };
        Some(Answer {
            status: StatusCode::OK,
            body: Bytes::from(answer.to_string()),
            reason: match handshake {
                Handshake::Slack => "slack_url_verification",
                Handshake::Zoom => "zoom_url_validation",
            },
            duplicate: false,
        })
    }

    /// Check the signature; the index of the key that matched.
    fn verify(&self, request: &RequestView<'_>) -> Result<usize, Rejection> {
        let Some(value) = request.headers.get(&self.signature_header) else {
            return Err(Rejection::unauthorized("signature_missing"));
        };
        let value = value.as_bytes().trim_ascii();
        if self.format == SignatureFormat::Token {
            let digest: [u8; 32] = Sha256::digest(value).into();
            return self
                .keys
                .iter()
                .position(
                    |k| matches!(k, Keyed::Token(expected) if bool::from(expected.ct_eq(&digest))),
                )
                .ok_or(Rejection::unauthorized("token_mismatch"));
        }

        let mut candidates: Vec<&[u8]> = Vec::with_capacity(2);
        let mut header_timestamp: Option<&[u8]> = None;
        match self.format {
            SignatureFormat::Plain => {
                if let Some(rest) = strip_prefix(value, &self.prefix) {
                    candidates.push(rest);
                }
            }
            SignatureFormat::List => {
                for entry in value.split(|b| b.is_ascii_whitespace()) {
                    if let Some(rest) = strip_prefix(entry, &self.prefix) {
                        candidates.push(rest);
                    }
                }
            }
            SignatureFormat::KeyValue => {
                for pair in split_on(value, &self.pair_separator) {
                    let pair = pair.trim_ascii();
                    let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                        continue;
                    };
                    let (key, val) = (&pair[..eq], &pair[eq + 1..]);
                    if self.signature_keys.iter().any(|k| k.as_slice() == key) {
                        candidates.push(val);
                    } else if self.timestamp_key.as_deref() == Some(key) {
                        header_timestamp = Some(val);
                    }
                }
            }
            SignatureFormat::Token => {}
        }
        if candidates.is_empty() {
            return Err(Rejection::unauthorized("signature_malformed"));
        }

        let timestamp: &[u8] = match (&self.timestamp_header, &self.timestamp_key) {
            (Some(header), _) => match request.headers.get(header) {
                Some(v) => v.as_bytes().trim_ascii(),
                None => return Err(Rejection::unauthorized("timestamp_missing")),
            },
            (None, Some(_)) => {
                header_timestamp.ok_or(Rejection::unauthorized("timestamp_missing"))?
            }
            (None, None) => b"",
        };
        if let Some(tolerance) = self.tolerance {
            let sent =
                parse_seconds(timestamp).ok_or(Rejection::unauthorized("timestamp_invalid"))?;
            let received = request
                .received_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if sent.abs_diff(received) > tolerance {
                return Err(Rejection::unauthorized("timestamp_out_of_tolerance"));
            }
        }
        let id: &[u8] = match &self.id_header {
            Some(header) => match request.headers.get(header) {
                Some(v) => v.as_bytes(),
                None => return Err(Rejection::unauthorized("id_missing")),
            },
            None => b"",
        };

        let url = self.signed_url(request)?;
        let form = if self.pieces.contains(&Piece::FormParams) && !url.contains("bodySHA256=") {
            form_params(request)
        } else {
            Vec::new()
        };
        let signed = Signed {
            body: request.body,
            timestamp,
            id,
            url: url.as_bytes(),
            form: &form,
        };
        let mut tag = [0u8; 64];
        let mut given = [0u8; 64];
        for (index, key) in self.keys.iter().enumerate() {
            let len = key.tag(&self.pieces, &signed, &mut tag);
            for candidate in &candidates {
                if let Some(decoded) = decode_signature(candidate, self.encoding, &mut given)
                    && decoded.len() == len
                    && bool::from(decoded.ct_eq(&tag[..len]))
                {
                    return Ok(index);
                }
            }
        }
        Err(Rejection::unauthorized("signature_mismatch"))
    }

    /// The URL the sender signed: `public_url` plus the request's query. With Twilio's
    /// `bodySHA256` query parameter, the body's SHA-256 must match it.
    fn signed_url(&self, request: &RequestView<'_>) -> Result<String, Rejection> {
        let Some(base) = &self.public_url else {
            return Ok(String::new());
        };
        let Some(query) = request.uri.query() else {
            return Ok(base.clone());
        };
        let joiner = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{joiner}{query}");
        if let Some(expected) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "bodySHA256")
            .map(|(_, value)| value.into_owned())
        {
            let digest = hex::encode(Sha256::digest(request.body));
            if !bool::from(
                digest
                    .as_bytes()
                    .ct_eq(expected.to_ascii_lowercase().as_bytes()),
            ) {
                return Err(Rejection::unauthorized("body_hash_mismatch"));
            }
        }
        Ok(url)
    }
}

/// Form parameters of a `application/x-www-form-urlencoded` body, sorted by name.
fn form_params(request: &RequestView<'_>) -> Vec<(String, String)> {
    let is_form = request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Vec::new();
    }
    let mut params: Vec<(String, String)> = form_urlencoded::parse(request.body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    params
}

fn strip_prefix<'v>(value: &'v [u8], prefix: &[u8]) -> Option<&'v [u8]> {
    if value.len() < prefix.len() || !value[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    Some(&value[prefix.len()..])
}

fn split_on<'v>(value: &'v [u8], separator: &'v [u8]) -> impl Iterator<Item = &'v [u8]> + 'v {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let current = rest?;
        if separator.is_empty() {
            rest = None;
            return Some(current);
        }
        match current
            .windows(separator.len())
            .position(|w| w == separator)
        {
            Some(at) => {
                rest = Some(&current[at + separator.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Unix seconds: 1 to 19 ASCII digits.
fn parse_seconds(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}
