//! Provider presets: each is a [`SchemeConfig`] value (see the README's provider table).

use serde::Deserialize;

use super::dedup::DedupSource;
use super::scheme::{KeyEncoding, SchemeConfig, SignatureEncoding, SignatureFormat};
use crate::HmacAlgorithm;

/// The providers with a preset (`verify.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `Stripe-Signature: t=…,v1=…` over `{t}.{body}`, 300 s.
    Stripe,
    /// `X-Slack-Signature: v0=<hex>` over `v0:{t}:{body}`, 300 s.
    Slack,
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
    /// `webhook-signature: v1,<b64> …` over `{id}.{t}.{body}`, `whsec_` base64 key, 300 s.
    StandardWebhooks,
    /// Standard Webhooks with `svix-` headers.
    Svix,
    /// `X-Gitlab-Token: <token>`.
    Gitlab,
    /// `Paddle-Signature: ts=…;h1=…` over `{t}:{body}`, 5 s.
    Paddle,
    /// `x-zm-signature: v0=<hex>` over `v0:{t}:{body}`, 300 s.
    Zoom,
    /// `X-Twilio-Signature`: HMAC-SHA1 base64 of the public URL + sorted form params.
    Twilio,
}

impl Provider {
    /// The preset's spelling in config.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Stripe => "stripe",
            Provider::Slack => "slack",
            Provider::Shopify => "shopify",
            Provider::StandardWebhooks => "standard-webhooks",
            Provider::Svix => "svix",
            Provider::Gitlab => "gitlab",
            Provider::Paddle => "paddle",
            Provider::Zoom => "zoom",
            Provider::Twilio => "twilio",
        }
    }

    /// Where this provider puts its delivery id (for `dedup: true`).
    pub fn delivery_id(self) -> Option<DedupSource> {
        let header = |name: &str| {
            Some(DedupSource {
                header: Some(name.to_owned()),
                ..DedupSource::default()
            })
        };
        let pointer = |pointer: &str| {
            Some(DedupSource {
                json_pointer: Some(pointer.to_owned()),
                ..DedupSource::default()
            })
        };
        match self {
            Provider::Github => header("x-github-delivery"),
            Provider::Stripe => pointer("/id"),
            Provider::Slack | Provider::Paddle => pointer("/event_id"),
            Provider::Shopify => header("x-shopify-webhook-id"),
            Provider::StandardWebhooks => header("webhook-id"),
            Provider::Svix => header("svix-id"),
            Provider::Gitlab => header("x-gitlab-event-uuid"),
            Provider::Zoom | Provider::Twilio => None,
        }
    }

    /// The scheme this provider signs with.
    pub fn scheme(self) -> SchemeConfig {
        let base = SchemeConfig {
            signature_header: String::new(),
            signature_format: SignatureFormat::Plain,
            signature_prefix: String::new(),
            signature_keys: Vec::new(),
            pair_separator: ",".to_owned(),
            timestamp_key: None,
            timestamp_header: None,
            id_header: None,
            signed: "{body}".to_owned(),
            algorithm: HmacAlgorithm::Sha256,
            key_encoding: KeyEncoding::Utf8,
            encoding: SignatureEncoding::Hex,
            tolerance: None,
            unsigned_body: false,
        };
        match self {
            Provider::Github => SchemeConfig {
                signature_header: "x-hub-signature-256".into(),
                signature_prefix: "sha256=".into(),
                ..base
            },
            Provider::Stripe => SchemeConfig {
                signature_header: "stripe-signature".into(),
                signature_format: SignatureFormat::KeyValue,
                signature_keys: vec!["v1".into()],
                timestamp_key: Some("t".into()),
                signed: "{t}.{body}".into(),
                tolerance: Some(300),
                ..base
            },
            Provider::Slack => SchemeConfig {
                signature_header: "x-slack-signature".into(),
                signature_prefix: "v0=".into(),
                timestamp_header: Some("x-slack-request-timestamp".into()),
                signed: "v0:{t}:{body}".into(),
                tolerance: Some(300),
                ..base
            },
            Provider::Shopify => SchemeConfig {
                signature_header: "x-shopify-hmac-sha256".into(),
                encoding: SignatureEncoding::Base64,
                ..base
            },
            Provider::StandardWebhooks | Provider::Svix => {
                let prefix = if self == Provider::Svix {
                    "svix"
                } else {
                    "webhook"
                };
                SchemeConfig {
                    signature_header: format!("{prefix}-signature"),
                    signature_format: SignatureFormat::List,
                    signature_prefix: "v1,".into(),
                    timestamp_header: Some(format!("{prefix}-timestamp")),
                    id_header: Some(format!("{prefix}-id")),
                    signed: "{id}.{t}.{body}".into(),
                    key_encoding: KeyEncoding::WhsecBase64,
                    encoding: SignatureEncoding::Base64,
                    tolerance: Some(300),
                    ..base
                }
            }
            Provider::Gitlab => SchemeConfig {
                signature_header: "x-gitlab-token".into(),
                signature_format: SignatureFormat::Token,
                ..base
            },
            Provider::Paddle => SchemeConfig {
                signature_header: "paddle-signature".into(),
                signature_format: SignatureFormat::KeyValue,
                signature_keys: vec!["h1".into()],
                pair_separator: ";".into(),
                timestamp_key: Some("ts".into()),
                signed: "{t}:{body}".into(),
                tolerance: Some(5),
                ..base
            },
            Provider::Zoom => SchemeConfig {
                signature_header: "x-zm-signature".into(),
                signature_prefix: "v0=".into(),
                timestamp_header: Some("x-zm-request-timestamp".into()),
                signed: "v0:{t}:{body}".into(),
                tolerance: Some(300),
                ..base
            },
            Provider::Twilio => SchemeConfig {
                signature_header: "x-twilio-signature".into(),
                signed: "{url}{form_params}".into(),
                algorithm: HmacAlgorithm::Sha1,
                encoding: SignatureEncoding::Base64,
                ..base
            },
        }
    }
}
