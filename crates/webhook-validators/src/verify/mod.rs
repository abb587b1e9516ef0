//! `verify`: provider signature schemes (presets or a declarative scheme), replay window,
//! secret rotation.
//!
//! ```json
//! "verify": {"provider": "stripe", "secret": "{$STRIPE_WEBHOOK_SECRET}"}
//! "verify": {"provider": "standard-webhooks", "secrets": ["whsec_new…", "whsec_old…"], "tolerance": 120}
//! "verify": {"scheme": {"signature_header": "X-Signature", "signature_prefix": "sha512=", "algorithm": "sha512"},
//!            "secret": "…"}
//! ```

//!
//! Its rooms: `scheme.rs` the declarative scheme, `presets.rs` the providers as values of
//! it, `build.rs` a scheme + secrets → [`Verifier`](check::Verifier), `check.rs` the one
//! signature check (also used by the plain `hmac` validator), `handshake.rs` the Slack/Zoom
//! URL handshakes, `dedup.rs` (+ `redis_store.rs`) delivery ids.

mod build;
pub(crate) mod check;
mod dedup;
mod handshake;
mod presets;
#[cfg(feature = "redis")]
mod redis_store;
pub(crate) mod scheme;

use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use webhook_core::config::Secret;
use webhook_core::{Answer, BoxFuture, BuildError, Check, RequestView, Validator};

use check::Verifier;
use dedup::{Dedup, Lookup};
pub use dedup::{DedupConfig, DedupSource};
use handshake::Handshake;
pub use presets::Provider;
pub use scheme::{KeyEncoding, SchemeConfig, SignatureEncoding, SignatureFormat};

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

/// `verify`: checks a provider's signature over the raw body (and timestamp, id, URL as
/// the scheme says), refuses timestamps outside the tolerance, accepts any of several
/// secrets and any of several signatures in the header. Comparisons are constant time.
#[derive(Clone)]
pub struct Verify {
    name: String,
    verifier: Verifier,
    handshake: Option<Handshake>,
    dedup: Option<Dedup>,
}

impl std::fmt::Debug for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verify")
            .field("scheme", &self.name)
            .field("secrets", &self.verifier.keys.len())
            .finish_non_exhaustive()
    }
}

impl Validator for Verify {
    const KEY: &'static str = "verify";
    type Config = VerifyConfig;

    fn build(config: VerifyConfig) -> Result<Self, BuildError> {
        Self::from_config(config)
    }

    /// A token scheme's header holds the shared secret itself (GitLab's `X-Gitlab-Token`).
    fn credential_headers(&self) -> Vec<http::HeaderName> {
        if self.verifier.format == scheme::SignatureFormat::Token {
            vec![self.verifier.signature_header.clone()]
        } else {
            Vec::new()
        }
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        let key = match self.verifier.verify(request) {
            Ok(key) => key,
            Err(rejection) => return Check::Reject(rejection),
        };
        if let Some(answer) = self
            .handshake
            .and_then(|h| h.answer(&self.verifier, key, request))
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
