//! Providers' URL handshakes (Slack's `url_verification`, Zoom's `endpoint.url_validation`),
//! answered only after the signature checked out.

use bytes::Bytes;
use hmac::Mac;
use http::StatusCode;
use webhook_core::{Answer, RequestView};

use super::check::{Keyed, Verifier};

/// A provider's URL handshake, answered after the signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handshake {
    /// Slack `{"type": "url_verification", "challenge": …}` → `{"challenge": …}`.
    Slack,
    /// Zoom `{"event": "endpoint.url_validation", "payload": {"plainToken": …}}` →
    /// `{"plainToken", "encryptedToken": hex(HMAC-SHA256(secret, plainToken))}`.
    Zoom,
}

impl Handshake {
    /// Slack's and Zoom's URL handshakes (only ever after the signature checked out).
    pub(super) fn answer(
        self,
        verifier: &Verifier,
        key: usize,
        request: &RequestView<'_>,
    ) -> Option<Answer> {
        let handshake = self;
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
                let Keyed::Sha256(mac) = verifier.keys.get(key)? else {
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
}
