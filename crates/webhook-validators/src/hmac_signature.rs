use http::HeaderName;
use serde::Deserialize;
use webhook_core::config::Secret;
use webhook_core::{BuildError, Check, RequestView, Validator};

use crate::verify::check::Verifier;
use crate::verify::{KeyEncoding, SchemeConfig, SignatureEncoding, SignatureFormat};

/// The hash of an HMAC signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[serde(try_from = "String")]
pub enum HmacAlgorithm {
    /// HMAC-SHA1 (legacy GitHub `X-Hub-Signature`).
    Sha1,
    /// HMAC-SHA256 (the default).
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// Any case, as the original's later versions take it (`SHA256`).
impl TryFrom<String> for HmacAlgorithm {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            _ => Err(format!("`{text}` is not sha1, sha256 or sha512")),
        }
    }
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

/// `hmac`: the configured header must hold the HMAC of the raw body, as hex (either case),
/// optionally prefixed with the algorithm name and `=` (`sha256=…`, as GitHub sends it).
/// The check is `verify`'s, with this one-signature scheme: constant time, over the raw
/// bytes.
#[derive(Clone)]
pub struct HmacSignature {
    algorithm: HmacAlgorithm,
    verifier: Verifier,
}

impl std::fmt::Debug for HmacSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacSignature")
            .field("algorithm", &self.algorithm)
            .field("verifier", &self.verifier)
            .finish()
    }
}

impl Validator for HmacSignature {
    const KEY: &'static str = "hmac";
    type Config = HmacConfig;

    fn build(config: HmacConfig) -> Result<Self, BuildError> {
        if config.secret.expose().is_empty() {
            return Err(BuildError::key("secret", "must not be empty"));
        }
        if HeaderName::from_bytes(config.header.as_bytes()).is_err() {
            return Err(BuildError::key(
                "header",
                format!("`{}` is not a valid header name", config.header),
            ));
        }
        let scheme = SchemeConfig {
            signature_header: config.header,
            signature_format: SignatureFormat::Plain,
            signature_prefix: format!("{}=", config.algorithm.name()),
            signature_keys: Vec::new(),
            pair_separator: String::new(),
            timestamp_key: None,
            timestamp_header: None,
            id_header: None,
            signed: "{body}".to_owned(),
            algorithm: config.algorithm,
            key_encoding: KeyEncoding::Utf8,
            encoding: SignatureEncoding::Hex,
            tolerance: None,
            unsigned_body: false,
        };
        let verifier = Verifier::build(
            "hmac",
            scheme,
            &[("secret".to_owned(), &config.secret)],
            None,
            None,
        )?
        .with_optional_prefix();
        Ok(Self {
            algorithm: config.algorithm,
            verifier,
        })
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        self.verifier.verify(request).map(|_| ()).into()
    }
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
