use hmac::{Hmac, KeyInit, Mac};
use http::HeaderName;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use webhook_core::config::Secret;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

/// The hash of an HMAC signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA1 (legacy GitHub `X-Hub-Signature`).
    Sha1,
    /// HMAC-SHA256 (the default).
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl HmacAlgorithm {
    fn name(self) -> &'static str {
        match self {
            HmacAlgorithm::Sha1 => "sha1",
            HmacAlgorithm::Sha256 => "sha256",
            HmacAlgorithm::Sha512 => "sha512",
        }
    }
}

/// The `hmac` key of a webhook entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// The shared secret, used as UTF-8 bytes.
    pub secret: Secret,
    /// The header carrying the signature (default `X-HMAC-Signature`).
    #[serde(default = "default_header")]
    pub header: String,
    /// `sha1`, `sha256` (default) or `sha512`.
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
}

fn default_header() -> String {
    "X-HMAC-Signature".to_owned()
}

#[derive(Clone)]
enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// `hmac`: the configured header must hold the HMAC of the raw body, as hex (either case),
/// optionally prefixed with the algorithm name and `=` (`sha256=…`, as GitHub sends it).
/// The comparison is constant time.
#[derive(Clone)]
pub struct HmacSignature {
    header: HeaderName,
    algorithm: HmacAlgorithm,
    keyed: KeyedMac,
}

impl std::fmt::Debug for HmacSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacSignature")
            .field("header", &self.header)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Validator for HmacSignature {
    const KEY: &'static str = "hmac";
    type Config = HmacConfig;

    fn build(config: HmacConfig) -> Result<Self, BuildError> {
        let key = config.secret.expose().as_bytes();
        if key.is_empty() {
            return Err(BuildError::key("secret", "must not be empty"));
        }
        let header = HeaderName::from_bytes(config.header.as_bytes()).map_err(|_| {
            BuildError::key(
                "header",
                format!("`{}` is not a valid header name", config.header),
            )
        })?;
        let invalid = |_| BuildError::key("secret", "cannot be used as an HMAC key");
        let keyed = match config.algorithm {
            HmacAlgorithm::Sha1 => KeyedMac::Sha1(Hmac::new_from_slice(key).map_err(invalid)?),
            HmacAlgorithm::Sha256 => KeyedMac::Sha256(Hmac::new_from_slice(key).map_err(invalid)?),
            HmacAlgorithm::Sha512 => KeyedMac::Sha512(Hmac::new_from_slice(key).map_err(invalid)?),
        };
        Ok(Self {
            header,
            algorithm: config.algorithm,
            keyed,
        })
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        self.verify(
            request.headers.get(&self.header).map(|v| v.as_bytes()),
            request.body,
        )
        .into()
    }
}

impl HmacSignature {
    fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), Rejection> {
        let Some(value) = header else {
            return Err(Rejection::unauthorized("signature_missing"));
        };
        let value = value.trim_ascii();
        let hex_text = match value.iter().position(|&b| b == b'=') {
            Some(eq) => {
                if !value[..eq].eq_ignore_ascii_case(self.algorithm.name().as_bytes()) {
                    return Err(Rejection::unauthorized("signature_wrong_algorithm"));
                }
                &value[eq + 1..]
            }
            None => value,
        };
        // Decode into a stack buffer (the longest digest, SHA-512, is 64 bytes).
        let mut buffer = [0u8; 64];
        let Some(signature) = buffer.get_mut(..hex_text.len() / 2) else {
            return Err(Rejection::unauthorized("signature_mismatch"));
        };
        if hex_text.len() % 2 != 0 || hex::decode_to_slice(hex_text, signature).is_err() {
            return Err(Rejection::unauthorized("signature_not_hex"));
        }
        let valid = match &self.keyed {
            KeyedMac::Sha1(mac) => verify_with(mac, body, signature),
            KeyedMac::Sha256(mac) => verify_with(mac, body, signature),
            KeyedMac::Sha512(mac) => verify_with(mac, body, signature),
        };
        if valid {
            Ok(())
        } else {
            Err(Rejection::unauthorized("signature_mismatch"))
        }
    }
}

/// Constant-time check of `signature` against the MAC of `body` (`verify_slice` also
/// refuses a signature of the wrong length).
fn verify_with<M: Mac + Clone>(keyed: &M, body: &[u8], signature: &[u8]) -> bool {
    let mut mac = keyed.clone();
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::run;
    use http::{HeaderMap, HeaderValue};

    // signatures.md: GitHub's published vector
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIG: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn github() -> HmacSignature {
        HmacSignature::build(HmacConfig {
            secret: Secret::new(SECRET),
            header: "X-Hub-Signature-256".into(),
            algorithm: HmacAlgorithm::Sha256,
        })
        .unwrap()
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn github_vector_and_variants() {
        let v = github();
        assert!(run(&v, &with(&format!("sha256={SIG}")), BODY, "127.0.0.1").is_ok());
        assert!(run(&v, &with(SIG), BODY, "127.0.0.1").is_ok());
        assert!(run(&v, &with(&SIG.to_uppercase()), BODY, "127.0.0.1").is_ok());
        assert!(
            run(
                &v,
                &with(&format!("SHA256={}", SIG.to_uppercase())),
                BODY,
                "127.0.0.1"
            )
            .is_ok()
        );
    }

    #[test]
    fn rejections() {
        let v = github();
        let reason = |h: &HeaderMap, body: &[u8]| run(&v, h, body, "127.0.0.1").unwrap_err().reason;
        assert_eq!(reason(&with(SIG), b"Hello, World?"), "signature_mismatch");
        assert_eq!(reason(&HeaderMap::new(), BODY), "signature_missing");
        assert_eq!(
            reason(&with(&format!("sha1={SIG}")), BODY),
            "signature_wrong_algorithm"
        );
        assert_eq!(reason(&with(&SIG[..62]), BODY), "signature_mismatch");
        assert_eq!(reason(&with(&SIG[..63]), BODY), "signature_not_hex");
        assert_eq!(
            reason(&with(&format!("{SIG}{SIG}{SIG}")), BODY),
            "signature_mismatch"
        );
        assert_eq!(reason(&with("zz"), BODY), "signature_not_hex");
        assert_eq!(reason(&with(""), BODY), "signature_mismatch");
        let wrong = HmacSignature::build(HmacConfig {
            secret: Secret::new("It's a Secret to Everybody!"),
            header: "X-Hub-Signature-256".into(),
            algorithm: HmacAlgorithm::Sha256,
        })
        .unwrap();
        assert!(run(&wrong, &with(SIG), BODY, "127.0.0.1").is_err());
    }

    #[test]
    fn sha1_and_sha512() {
        // RFC 4231 test case 2 (key "Jefe")
        let body = b"what do ya want for nothing?";
        let sha512 = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
        let sha1 = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"; // RFC 2202 test case 2
        for (algorithm, sig) in [(HmacAlgorithm::Sha512, sha512), (HmacAlgorithm::Sha1, sha1)] {
            let v = HmacSignature::build(HmacConfig {
                secret: Secret::new("Jefe"),
                header: "X-HMAC-Signature".into(),
                algorithm,
            })
            .unwrap();
            let mut h = HeaderMap::new();
            h.insert("x-hmac-signature", HeaderValue::from_str(sig).unwrap());
            assert!(run(&v, &h, body, "127.0.0.1").is_ok(), "{algorithm:?}");
            assert!(run(&v, &h, b"what do ya want for nothing!", "127.0.0.1").is_err());
        }
    }
}
