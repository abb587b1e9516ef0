//! The one signature check, shared by `verify` (any scheme) and the plain `hmac` validator:
//! parse the candidates without allocating strings, decode each into a stack buffer, one MAC
//! per secret fed piece by piece (no concatenated copy of the body), constant-time compare,
//! then the timestamp tolerance.

use std::time::UNIX_EPOCH;

use hmac::{Hmac, Mac};
use http::HeaderName;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use webhook_core::{Rejection, RequestView};

use super::scheme::{Piece, SignatureEncoding, SignatureFormat, decode_signature};

/// A scheme, built: everything the check needs, no allocation per request.
#[derive(Clone)]
pub(crate) struct Verifier {
    pub(super) format: SignatureFormat,
    pub(super) prefix: Vec<u8>,
    /// The prefix may be left out (plain `hmac`: `sha256=<hex>` or `<hex>`); a signature
    /// with another `name=` in front is then refused as `signature_wrong_algorithm`.
    pub(super) prefix_optional: bool,
    pub(super) signature_keys: Vec<Vec<u8>>,
    pub(super) pair_separator: Vec<u8>,
    pub(super) timestamp_key: Option<Vec<u8>>,
    pub(super) signature_header: HeaderName,
    pub(super) timestamp_header: Option<HeaderName>,
    pub(super) id_header: Option<HeaderName>,
    pub(super) pieces: Vec<Piece>,
    pub(super) keys: Vec<Keyed>,
    pub(super) encoding: SignatureEncoding,
    pub(super) tolerance: Option<u64>,
    pub(super) public_url: Option<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("signature_header", &self.signature_header)
            .field("format", &self.format)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) enum Keyed {
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

impl Verifier {
    /// Accept the signature with or without its prefix (plain `hmac`).
    pub(crate) fn with_optional_prefix(mut self) -> Self {
        self.prefix_optional = true;
        self
    }

    /// Check the signature; the index of the key that matched.
    pub(crate) fn verify(&self, request: &RequestView<'_>) -> Result<usize, Rejection> {
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
            SignatureFormat::Plain => match strip_prefix(value, &self.prefix) {
                Some(rest) => candidates.push(rest),
                None if self.prefix_optional => {
                    if value.contains(&b'=') {
                        return Err(Rejection::unauthorized("signature_wrong_algorithm"));
                    }
                    candidates.push(value);
                }
                None => {}
            },
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
            match form_params(request) {
                Some(params) => params,
                None if request.body.is_empty() => Vec::new(),
                // neither form parameters nor a body hash: the body would go unsigned
                None => return Err(Rejection::unauthorized("body_not_signed")),
            }
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
        let mut decodable = false;
        for (index, key) in self.keys.iter().enumerate() {
            let len = key.tag(&self.pieces, &signed, &mut tag);
            for candidate in &candidates {
                if let Some(decoded) = decode_signature(candidate, self.encoding, &mut given) {
                    decodable = true;
                    if decoded.len() == len && bool::from(decoded.ct_eq(&tag[..len])) {
                        return Ok(index);
                    }
                }
            }
        }
        // Not a signature in the scheme's encoding at all (a signature too long for any
        // digest is a mismatch).
        let fits = |c: &&[u8]| match self.encoding {
            SignatureEncoding::Hex => c.len() / 2 <= 64,
            SignatureEncoding::Base64 => c.len() / 4 * 3 <= 64,
        };
        if !decodable && candidates.iter().all(fits) {
            return Err(Rejection::unauthorized(match self.encoding {
                SignatureEncoding::Hex => "signature_not_hex",
                SignatureEncoding::Base64 => "signature_not_base64",
            }));
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

/// Form parameters of a `application/x-www-form-urlencoded` body, sorted by name; `None`
/// for any other content type.
fn form_params(request: &RequestView<'_>) -> Option<Vec<(String, String)>> {
    let is_form = request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return None;
    }
    let mut params: Vec<(String, String)> = form_urlencoded::parse(request.body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    Some(params)
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
