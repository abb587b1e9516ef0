//! The request validators of the webhook gateway, each configured by one key of a webhook
//! entry in webhooks.json:
//!
//! | key | checks | rejection |
//! |---|---|---|
//! | `ip_whitelist` | the client IP is in a list of IPs / CIDRs (v4 and v6) | 403 |
//! | `authorization` | the whole `Authorization` header, constant time | 401 |
//! | `hmac` | an HMAC (sha1/sha256/sha512) of the raw body in a header, constant time | 401 |
//! | `verify` | a provider's signature scheme (preset or declarative), replay window, rotation | 401 |
//! | `basic_auth` | `Authorization: Basic` user and password, constant time | 401 |
//! | `digest_auth` | HTTP Digest (RFC 7616) with server nonces; replays refused | 401 + challenge |
//! | `header_auth` | an API key in a header, constant time | 401 |
//! | `query_auth` | an API key in a query parameter, constant time | 401 |
//! | `oauth1` | an OAuth 1.0 signature (RFC 5849: HMAC-SHA1 or PLAINTEXT), timestamp window, nonce once | 401 |
//! | `oauth2` | a bearer token at an RFC 7662 introspection endpoint (cached briefly) or as a local JWT; scopes | 401 |
//! | `jwt` | a bearer JWT: signature (HS/RS/PS/ES/EdDSA, never `none`), `exp`, `iss`, `aud` | 401 |
//! | `recaptcha` | a reCAPTCHA v2/v3 token at the siteverify endpoint (v3: a minimum score) | 401 |
//! | `rate_limit` | at most `max_requests` per sliding `window_seconds` (per instance, or shared through Redis) | 429 + `Retry-After` |
//! | `json_schema` | the body matches a JSON Schema | 422 (400 if not JSON) |
//!
//! [`register`] adds them in that order, so a request is rate-limited only once it is
//! authenticated: unauthenticated floods cannot spend a sender's quota.

mod authorization;
mod credentials;
mod digest_auth;
mod hmac_signature;
mod ip_allow_list;
mod json_schema;
mod jwt;
mod oauth1;
mod oauth2;
mod rate_limit;
mod recaptcha;
pub mod shared_redis;
mod verify;

pub use authorization::Authorization;
pub use credentials::{
    BasicAuth, BasicAuthConfig, HeaderAuth, HeaderAuthConfig, QueryAuth, QueryAuthConfig,
};
pub use digest_auth::{DigestAuth, DigestAuthConfig};
pub use hmac_signature::{HmacAlgorithm, HmacConfig, HmacSignature};
pub use ip_allow_list::IpAllowList;
pub use json_schema::{JsonSchema, MAX_SCHEMA_BODY_BYTES};
pub use jwt::{Jwt, JwtConfig};
pub use oauth1::{OAuth1, OAuth1Config};
pub use oauth2::{OAuth2, OAuth2Config, Scopes};
pub use rate_limit::{RateLimit, RateLimitConfig};
pub use recaptcha::{Recaptcha, RecaptchaConfig};
pub use verify::{
    DedupConfig, DedupSource, KeyEncoding, Provider, SchemeConfig, SignatureEncoding,
    SignatureFormat, Verify, VerifyConfig,
};

/// Add every validator of this crate to `registry`, in the order they must run.
pub fn register(registry: &mut webhook_core::Registry) {
    registry
        .register_validator::<IpAllowList>()
        .register_validator::<Authorization>()
        .register_validator::<BasicAuth>()
        .register_validator::<DigestAuth>()
        .register_validator::<HeaderAuth>()
        .register_validator::<QueryAuth>()
        .register_validator::<Jwt>()
        .register_validator::<OAuth1>()
        .register_validator::<OAuth2>()
        .register_validator::<HmacSignature>()
        .register_validator::<Verify>()
        .register_validator::<RateLimit>()
        .register_validator::<Recaptcha>()
        .register_validator::<JsonSchema>();
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use bytes::Bytes;
    use http::{HeaderMap, Method, Uri};
    use webhook_core::{Check, Rejection, RequestView, Validator};

    pub(crate) fn run<V: Validator>(
        v: &V,
        headers: &HeaderMap,
        body: &[u8],
        client: &str,
    ) -> Result<(), Rejection> {
        let body = Bytes::copy_from_slice(body);
        let peer: SocketAddr = format!("{client}:1234")
            .parse()
            .unwrap_or_else(|_| format!("[{client}]:1234").parse().unwrap());
        let view = RequestView {
            webhook_id: "t",
            method: &Method::POST,
            uri: &Uri::from_static("/webhook/t"),
            headers,
            peer,
            client_ip: peer.ip(),
            body: &body,
            received_at: SystemTime::now(),
        };
        match v.check(&view) {
            Check::Pass => Ok(()),
            Check::Reject(r) => Err(r),
            Check::Answer(_) | Check::Pending(_) => panic!("these validators only pass or reject"),
        }
    }
}
