use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use webhook_core::config::Secret;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

/// `authorization`: the whole `Authorization` header must equal the configured value
/// (e.g. `"Bearer abc"`). `null`, `""` or blanks mean no check, as in the original.
///
/// Both sides are hashed with SHA-256 and the digests compared in constant time, so neither
/// the content nor the length of the secret leaks through timing.
#[derive(Debug, Clone)]
pub struct Authorization {
    expected_digest: [u8; 32],
}

impl Validator for Authorization {
    const KEY: &'static str = "authorization";
    type Config = Option<Secret>;

    fn enabled(config: &Option<Secret>) -> bool {
        config
            .as_ref()
            .is_some_and(|s| !s.expose().trim().is_empty())
    }

    fn build(config: Option<Secret>) -> Result<Self, BuildError> {
        let Some(config) = config.filter(|s| !s.expose().trim().is_empty()) else {
            return Err(BuildError::other("must not be empty"));
        };
        Ok(Self {
            expected_digest: Sha256::digest(config.expose().as_bytes()).into(),
        })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        vec![http::header::AUTHORIZATION]
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let Some(given) = request.headers.get(AUTHORIZATION) else {
            return Check::Reject(Rejection::unauthorized("authorization_missing"));
        };
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.expected_digest)) {
            Check::Pass
        } else {
            Check::Reject(Rejection::unauthorized("authorization_mismatch"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::run;
    use http::{HeaderMap, HeaderValue};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn right_wrong_missing() {
        let v = Authorization::build(Some(Secret::new("Bearer s3cret"))).unwrap();
        assert!(run(&v, &with("Bearer s3cret"), b"", "127.0.0.1").is_ok());
        assert_eq!(
            run(&v, &with("Bearer s3cre"), b"", "127.0.0.1")
                .unwrap_err()
                .reason,
            "authorization_mismatch"
        );
        assert!(run(&v, &with("bearer s3cret"), b"", "127.0.0.1").is_err());
        assert_eq!(
            run(&v, &HeaderMap::new(), b"", "127.0.0.1")
                .unwrap_err()
                .reason,
            "authorization_missing"
        );
        assert!(!Authorization::enabled(&Some(Secret::new(""))));
        assert!(!Authorization::enabled(&Some(Secret::new("  "))));
        assert!(!Authorization::enabled(&None));
        assert!(Authorization::build(None).is_err());
    }
}
