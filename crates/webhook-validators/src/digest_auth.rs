//! `digest_auth`: HTTP Digest authentication (RFC 7616) with server-issued nonces.
//!
//! The original checks a Digest response against whatever nonce the client names, never
//! sends a challenge and accepts replays. Here a request without valid credentials gets
//! `401` with a `WWW-Authenticate: Digest` challenge carrying a nonce the server made (an
//! HMAC of its issue time under a key of this process, valid for [`NONCE_LIFETIME`]); a
//! response to an expired nonce gets a fresh one with `stale=true`; and a nonce count
//! (`nc`) must grow with each use of a nonce (without `qop`, a nonce is good once), so a
//! captured request cannot be played again. Header parsing and the response hash are the
//! `digest_auth` crate's.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use digest_auth::{Algorithm, AuthContext, AuthorizationHeader, HttpMethod, Qop};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderValue;
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use webhook_core::config::Secret;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

/// How long a nonce the server issued may be used.
pub(crate) const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Nonces whose counts are remembered at most (each a few dozen bytes); past it, the
/// oldest are forgotten first, which only makes their clients ask for a new nonce.
const MAX_TRACKED_NONCES: usize = 100_000;

/// The `digest_auth` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestAuthConfig {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
    /// The protection space named in the challenge (default `Webhook API`).
    #[serde(default = "default_realm")]
    pub realm: String,
    /// `MD5` (default, as the original), `MD5-sess`, `SHA-256`, `SHA-256-sess`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// `auth` (default), or `""`/`null` for RFC 2069 responses without `qop`.
    #[serde(default = "default_qop")]
    pub qop: Option<String>,
}

fn default_realm() -> String {
    "Webhook API".to_owned()
}

fn default_algorithm() -> String {
    "MD5".to_owned()
}

fn default_qop() -> Option<String> {
    Some("auth".to_owned())
}

/// See the module docs.
#[derive(Debug)]
pub struct DigestAuth {
    username: String,
    password: Secret,
    realm: String,
    algorithm: Algorithm,
    with_qop: bool,
    /// Signs the nonces this process issues.
    key: [u8; 32],
    /// Makes every nonce unique, even several issued in one second.
    issued: AtomicU64,
    /// Nonce → (issued at, highest `nc` used so far).
    seen: Mutex<HashMap<String, (u64, u32)>>,
}

impl Validator for DigestAuth {
    const KEY: &'static str = "digest_auth";
    type Config = DigestAuthConfig;

    fn build(config: DigestAuthConfig) -> Result<Self, BuildError> {
        if config.username.is_empty() || config.username.contains(['"', '\\', ':']) {
            return Err(BuildError::key(
                "username",
                "must be non-empty, without `\"`, `\\` or `:`",
            ));
        }
        if config.password.expose().is_empty() {
            return Err(BuildError::key("password", "must not be empty"));
        }
        if config.realm.is_empty()
            || config
                .realm
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(BuildError::key(
                "realm",
                "must be non-empty, without quotes, backslashes or control characters",
            ));
        }
        let algorithm = Algorithm::from_str(&config.algorithm)
            .ok()
            .filter(|a| !a.to_string().starts_with("SHA-512-256"))
            .ok_or_else(|| {
                BuildError::key(
                    "algorithm",
                    format!(
                        "`{}` is not one of MD5, MD5-sess, SHA-256, SHA-256-sess",
                        config.algorithm
                    ),
                )
            })?;
        let with_qop = match config.qop.as_deref().map(str::trim) {
            None | Some("") => false,
            Some("auth") => true,
            Some(other) => {
                return Err(BuildError::key(
                    "qop",
                    format!("`{other}` is not supported: use `auth` (or `\"\"` for none)"),
                ));
            }
        };
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|err| BuildError::other(format!("no randomness for nonces: {err}")))?;
        tracing::info!(
            realm = %config.realm,
            "digest_auth: unlike the original, the server issues the nonces (401 with a \
             WWW-Authenticate challenge first) and refuses replayed responses"
        );
        Ok(Self {
            username: config.username,
            password: config.password,
            realm: config.realm,
            algorithm,
            with_qop,
            key,
            issued: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
        })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        vec![http::header::AUTHORIZATION]
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let now = unix_seconds(request.received_at);
        match self.verify(request, now) {
            Ok(()) => Check::Pass,
            Err(Refusal { reason, stale }) => {
                Check::Reject(Rejection::challenge(reason, self.challenge(now, stale)))
            }
        }
    }
}

struct Refusal {
    reason: &'static str,
    stale: bool,
}

fn refuse(reason: &'static str) -> Refusal {
    Refusal {
        reason,
        stale: false,
    }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl DigestAuth {
    fn verify(&self, request: &RequestView<'_>, now: u64) -> Result<(), Refusal> {
        let value = request
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| refuse("digest_auth_missing"))?;
        let text = value
            .to_str()
            .map_err(|_| refuse("digest_auth_malformed"))?;
        let scheme_ok = text
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("digest "));
        if !scheme_ok {
            return Err(refuse("digest_auth_missing"));
        }
        let given = AuthorizationHeader::parse(&format!("Digest {}", &text[7..]))
            .map_err(|_| refuse("digest_auth_malformed"))?;
        let issued = self
            .issued_at(&given.nonce)
            .ok_or_else(|| refuse("digest_auth_unknown_nonce"))?;
        let target = request.uri.path_and_query().map_or("/", |p| p.as_str());
        let fields_match = given.realm == self.realm
            && !given.userhash
            && given.algorithm == self.algorithm
            && given.uri == target
            && (given.qop == Some(Qop::AUTH)) == self.with_qop
            && bool::from(given.username.as_bytes().ct_eq(self.username.as_bytes()));
        if !fields_match {
            return Err(refuse("digest_auth_mismatch"));
        }
        let mut expected = given.clone();
        let context = AuthContext::new_with_method(
            self.username.as_str(),
            self.password.expose(),
            target,
            None::<&[u8]>,
            HttpMethod::from(request.method.as_str()),
        );
        expected.digest(&context);
        let response_ok = bool::from(
            expected
                .response
                .as_bytes()
                .ct_eq(given.response.to_ascii_lowercase().as_bytes()),
        );
        if !response_ok {
            return Err(refuse("digest_auth_mismatch"));
        }
        // Right credentials: is the nonce still fresh, and is this use of it new?
        if now.saturating_sub(issued) > NONCE_LIFETIME.as_secs() {
            return Err(Refusal {
                reason: "digest_auth_stale_nonce",
                stale: true,
            });
        }
        self.count_use(&given.nonce, issued, given.nc, now)
    }

    /// Remember that `nonce` was used with count `nc`; refuse a count already seen.
    fn count_use(&self, nonce: &str, issued: u64, nc: u32, now: u64) -> Result<(), Refusal> {
        let mut seen = match self.seen.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.len() >= MAX_TRACKED_NONCES {
            let lifetime = NONCE_LIFETIME.as_secs();
            seen.retain(|_, (at, _)| now.saturating_sub(*at) <= lifetime);
            while seen.len() >= MAX_TRACKED_NONCES {
                let Some(oldest) = seen
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                seen.remove(&oldest);
            }
        }
        let count = if self.with_qop { nc } else { 1 };
        match seen.get_mut(nonce) {
            Some((_, last)) if count <= *last => Err(refuse("digest_auth_replay")),
            Some((_, last)) => {
                *last = count;
                Ok(())
            }
            None => {
                seen.insert(nonce.to_owned(), (issued, count));
                Ok(())
            }
        }
    }

    /// `<issued at, 16 hex><serial, 16 hex><mac, 32 hex>`.
    fn nonce(&self, issued: u64) -> String {
        let serial = self.issued.fetch_add(1, Ordering::Relaxed);
        let mut nonce = format!("{issued:016x}{serial:016x}");
        for byte in self.mac(issued, serial) {
            let _ = write!(nonce, "{byte:02x}");
        }
        nonce
    }

    fn mac(&self, issued: u64, serial: u64) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&issued.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        mac.update(self.realm.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut short = [0u8; 16];
        short.copy_from_slice(&full[..16]);
        short
    }

    /// When this process issued `nonce`, if it did.
    fn issued_at(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != 64 || !nonce.is_ascii() {
            return None;
        }
        let issued = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let serial = u64::from_str_radix(&nonce[16..32], 16).ok()?;
        let given = hex::decode(&nonce[32..]).ok()?;
        bool::from(self.mac(issued, serial).ct_eq(&given[..])).then_some(issued)
    }

    fn challenge(&self, now: u64, stale: bool) -> HeaderValue {
        let mut text = format!(
            r#"Digest realm="{}", nonce="{}", algorithm={}"#,
            self.realm,
            self.nonce(now),
            self.algorithm
        );
        if self.with_qop {
            text.push_str(r#", qop="auth""#);
        }
        if stale {
            text.push_str(", stale=true");
        }
        // the realm was checked at build time: only visible characters and spaces
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("Digest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validator(qop: Option<&str>) -> DigestAuth {
        DigestAuth::build(DigestAuthConfig {
            username: "alice".into(),
            password: Secret::new("wonderland"),
            realm: default_realm(),
            algorithm: default_algorithm(),
            qop: qop.map(str::to_owned),
        })
        .unwrap()
    }

    #[test]
    fn nonces_are_ours_and_counts_must_grow() {
        let v = validator(Some("auth"));
        let nonce = v.nonce(1_000);
        assert_eq!(v.issued_at(&nonce), Some(1_000));
        let mut forged = nonce.clone();
        forged.replace_range(63.., if nonce.ends_with('0') { "1" } else { "0" });
        assert_eq!(v.issued_at(&forged), None);
        assert_eq!(
            v.issued_at(&format!("{:016x}{}", 2_000, &nonce[16..])),
            None
        );
        assert_ne!(v.nonce(1_000), v.nonce(1_000), "unique within one second");
        assert!(v.count_use(&nonce, 1_000, 1, 1_001).is_ok());
        assert!(v.count_use(&nonce, 1_000, 2, 1_001).is_ok());
        assert_eq!(
            v.count_use(&nonce, 1_000, 2, 1_001).err().map(|r| r.reason),
            Some("digest_auth_replay")
        );
        // without qop a nonce is good once
        let plain = validator(None);
        let nonce = plain.nonce(1_000);
        assert!(plain.count_use(&nonce, 1_000, 7, 1_001).is_ok());
        assert!(plain.count_use(&nonce, 1_000, 8, 1_001).is_err());
    }

    #[test]
    fn config_errors() {
        let config = |algorithm: &str, qop: Option<&str>, realm: &str| DigestAuthConfig {
            username: "u".into(),
            password: Secret::new("p"),
            realm: realm.into(),
            algorithm: algorithm.into(),
            qop: qop.map(str::to_owned),
        };
        for (algorithm, key) in [("SHA-1", "algorithm"), ("SHA-512-256", "algorithm")] {
            assert_eq!(
                DigestAuth::build(config(algorithm, Some("auth"), "r"))
                    .unwrap_err()
                    .key,
                key
            );
        }
        assert_eq!(
            DigestAuth::build(config("MD5", Some("auth-int"), "r"))
                .unwrap_err()
                .key,
            "qop"
        );
        assert_eq!(
            DigestAuth::build(config("MD5", None, "a\"b"))
                .unwrap_err()
                .key,
            "realm"
        );
        assert!(DigestAuth::build(config("SHA-256-sess", Some(""), "r")).is_ok());
    }
}
