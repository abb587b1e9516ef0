//! The declarative signature scheme: where the signature and timestamp are, what is
//! signed, how keys and signatures are encoded. Presets ([`super::presets`]) are values of
//! [`SchemeConfig`]; a webhook can also spell one out under `verify.scheme`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use webhook_core::BuildError;

use crate::HmacAlgorithm;

/// How the signature header is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureFormat {
    /// One signature, after `signature_prefix` (GitHub `sha256=<hex>`, Slack `v0=<hex>`).
    #[default]
    Plain,
    /// `key=value` pairs separated by `pair_separator`; signatures under
    /// `signature_keys`, the timestamp under `timestamp_key` (Stripe `t=…,v1=…`, Paddle
    /// `ts=…;h1=…`).
    KeyValue,
    /// Space-separated entries, each `signature_prefix` + signature (Standard Webhooks
    /// `v1,<b64> v1,<b64>`).
    List,
    /// The header holds the secret itself (GitLab `X-Gitlab-Token`); compared in constant
    /// time.
    Token,
}

/// How the configured secret becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyEncoding {
    /// The secret's UTF-8 bytes, as written (also Stripe's whole `whsec_…` string).
    #[default]
    Utf8,
    /// Hex-decoded.
    Hex,
    /// Base64-decoded.
    Base64,
    /// `whsec_` stripped, the rest base64-decoded (Standard Webhooks, Svix).
    WhsecBase64,
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Hex, either case.
    #[default]
    Hex,
    /// Standard base64 (compared exactly).
    Base64,
}

/// A signature scheme, as configured (`verify.scheme`) or as a preset defines it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeConfig {
    /// The header carrying the signature(s).
    pub signature_header: String,
    /// Its layout (default `plain`).
    #[serde(default)]
    pub signature_format: SignatureFormat,
    /// Text before each signature (`sha256=`, `v0=`, `v1,`); required when set.
    #[serde(default)]
    pub signature_prefix: String,
    /// With `key_value`: the keys whose values are signatures (e.g. `["v1"]`).
    #[serde(default)]
    pub signature_keys: Vec<String>,
    /// With `key_value`: the pair separator (default `,`).
    #[serde(default = "default_pair_separator")]
    pub pair_separator: String,
    /// With `key_value`: the key holding the timestamp (e.g. `t`).
    #[serde(default)]
    pub timestamp_key: Option<String>,
    /// A header holding the timestamp (Unix seconds).
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// A header holding the message id (`{id}` in `signed`).
    #[serde(default)]
    pub id_header: Option<String>,
    /// What is signed: text with `{body}`, `{t}`, `{id}`, `{url}`, `{form_params}` (default
    /// `{body}`).
    #[serde(default = "default_signed")]
    pub signed: String,
    /// `sha1`, `sha256` (default) or `sha512`.
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// How the secret becomes the key (default `utf8`).
    #[serde(default)]
    pub key_encoding: KeyEncoding,
    /// How signatures are written (default `hex`).
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Seconds a timestamp may be off from the time of receipt, past or future (default
    /// 300 when the scheme has a timestamp).
    #[serde(default, deserialize_with = "webhook_core::config::de::option_number")]
    pub tolerance: Option<u64>,
    /// Accept a `signed` template that covers no part of the body (neither `{body}` nor
    /// `{form_params}`): any body then passes with a valid signature. Default false, which
    /// makes such a template a config error.
    #[serde(default)]
    pub unsigned_body: bool,
}

fn default_pair_separator() -> String {
    ",".to_owned()
}

fn default_signed() -> String {
    "{body}".to_owned()
}

/// A piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(Vec<u8>),
    Body,
    Timestamp,
    Id,
    Url,
    FormParams,
}

/// Parse `signed` into pieces.
pub(crate) fn parse_signed(template: &str) -> Result<Vec<Piece>, BuildError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest.as_bytes()[..open].to_vec()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| BuildError::key("scheme.signed", "has a `{` without `}`"))?;
        pieces.push(match &after[..close] {
            "body" => Piece::Body,
            "t" | "timestamp" => Piece::Timestamp,
            "id" => Piece::Id,
            "url" => Piece::Url,
            "form_params" => Piece::FormParams,
            other => {
                return Err(BuildError::key(
                    "scheme.signed",
                    format!("`{{{other}}}` is not one of {{body}}, {{t}}, {{id}}, {{url}}, {{form_params}}"),
                ));
            }
        });
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.as_bytes().to_vec()));
    }
    Ok(pieces)
}

/// The HMAC key of `secret` under `encoding`.
pub(crate) fn decode_key(secret: &str, encoding: KeyEncoding) -> Result<Vec<u8>, &'static str> {
    let key = match encoding {
        KeyEncoding::Utf8 => secret.as_bytes().to_vec(),
        KeyEncoding::Hex => hex::decode(secret).map_err(|_| "is not hex")?,
        KeyEncoding::Base64 => BASE64.decode(secret).map_err(|_| "is not base64")?,
        KeyEncoding::WhsecBase64 => BASE64
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .map_err(|_| "is not `whsec_` followed by base64")?,
    };
    if key.is_empty() {
        return Err("must not be empty");
    }
    Ok(key)
}

/// Decode one signature into `buffer`; `None` when it is not valid in `encoding`.
pub(crate) fn decode_signature<'b>(
    text: &[u8],
    encoding: SignatureEncoding,
    buffer: &'b mut [u8; 64],
) -> Option<&'b [u8]> {
    match encoding {
        SignatureEncoding::Hex => {
            if !text.len().is_multiple_of(2) || text.len() / 2 > buffer.len() {
                return None;
            }
            let out = &mut buffer[..text.len() / 2];
            hex::decode_to_slice(text, out).ok()?;
            Some(out)
        }
        SignatureEncoding::Base64 => {
            let written = BASE64.decode_slice(text, &mut buffer[..]).ok()?;
            Some(&buffer[..written])
        }
    }
}
