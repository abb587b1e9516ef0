use std::sync::Arc;

use async_nats::HeaderMap as NatsHeaders;
use async_nats::jetstream::context::GetStreamByNameErrorKind;
use async_nats::jetstream::message::PublishMessage;
use tokio::sync::OnceCell;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};

use crate::client::{self, ACK_TIMEOUT, Shared};
use crate::config::{NatsConfig, NatsConnection};
use crate::error::NatsError;

/// The `nats` destination.
#[derive(Debug)]
pub struct Nats {
    shared: Arc<Shared>,
    subject: String,
    subject_header: Option<http::HeaderName>,
    include_headers: bool,
    /// `true` = JetStream; set from config, or found out at the first delivery.
    jetstream: OnceCell<bool>,
}

impl Module for Nats {
    const KIND: &'static str = "nats";
    const CONNECTION_TYPES: &'static [&'static str] = &["nats"];
    const TOP_LEVEL_KEYS: &'static [&'static str] = &["subject"];
    type Config = NatsConfig;
    type Connection = NatsConnection;

    fn validate(config: &NatsConfig, _: &BuildContext) -> Result<(), BuildError> {
        if !valid_subject(&config.subject) {
            return Err(BuildError::key(
                "subject",
                format!(
                    "`{}` is not a valid subject to publish on (dot-separated tokens, no \
                     spaces, no wildcards `*` or `>`)",
                    config.subject
                ),
            ));
        }
        if let Some(name) = &config.subject_header {
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                BuildError::key("subject_header", format!("`{name}` is not a header name"))
            })?;
        }
        Ok(())
    }

    async fn build(
        config: NatsConfig,
        connection: Option<NatsConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection =
            connection.ok_or_else(|| BuildError::other("a nats connection is required"))?;
        let name = context.connection_name.clone().unwrap_or_default();
        let shared = context
            .shared
            .get_or_try_init(&name, || client::connect(&connection, &name))
            .await?;
        let subject_header = config
            .subject_header
            .as_deref()
            .map(|h| http::HeaderName::from_bytes(h.as_bytes()))
            .transpose()
            .map_err(|_| BuildError::key("subject_header", "is not a header name"))?;
        let nats = Self {
            shared,
            subject: config.subject,
            subject_header,
            include_headers: config.include_headers,
            jetstream: OnceCell::new_with(config.jetstream),
        };
        if nats.jetstream.get().is_none() && nats.shared.connected() {
            // Say at start-up which way it publishes; a failed lookup is tried again later.
            if let Ok(mode) = nats.mode().await {
                tracing::info!(webhook = %context.webhook_id, subject = %nats.subject, jetstream = mode, "nats publishing mode");
            }
        }
        Ok(nats)
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        if !self.shared.connected() {
            return Err(NatsError::Disconnected.into());
        }
        let subject = self.subject_for(delivery);
        let mut headers = NatsHeaders::new();
        if self.include_headers {
            for (name, value) in delivery.headers.iter() {
                if let Ok(value) = value.to_str() {
                    headers.append(name.as_str(), value);
                }
            }
        }
        let request_id = delivery.request_id.to_string();
        headers.insert("X-Request-Id", request_id.as_str());
        if self.mode().await? {
            headers.insert("Nats-Msg-Id", request_id.as_str());
            let publish = PublishMessage::build()
                .payload(delivery.body.clone())
                .headers(headers);
            let ack = self
                .shared
                .jetstream
                .send_publish(subject.clone(), publish)
                .await
                .map_err(NatsError::JetStream)?;
            let ack = tokio::time::timeout(ACK_TIMEOUT, ack)
                .await
                .map_err(|_| NatsError::Timeout)?
                .map_err(NatsError::JetStream)?;
            tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, subject, stream = %ack.stream, sequence = ack.sequence, duplicate = ack.duplicate, "stored in jetstream");
        } else {
            self.shared
                .client
                .publish_with_headers(subject.clone(), headers, delivery.body.clone())
                .await
                .map_err(NatsError::Publish)?;
            tokio::time::timeout(ACK_TIMEOUT, self.shared.client.flush())
                .await
                .map_err(|_| NatsError::Timeout)?
                .map_err(NatsError::Flush)?;
            tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, subject, "published");
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        if self.shared.connected() {
            Ok(())
        } else {
            Err(NatsError::Disconnected.into())
        }
    }

    async fn shutdown(&self) {
        let _ = tokio::time::timeout(ACK_TIMEOUT, self.shared.client.flush()).await;
    }
}

impl Nats {
    /// The subject of this delivery: the configured one, plus the `subject_header` value
    /// when that is a valid token.
    fn subject_for(&self, delivery: &Delivery) -> String {
        let token = self
            .subject_header
            .as_ref()
            .and_then(|name| delivery.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .filter(|v| valid_token(v));
        match token {
            Some(token) => format!("{}.{token}", self.subject),
            None => self.subject.clone(),
        }
    }

    /// JetStream or core NATS: the configured choice, or whether a stream captures the
    /// subject (looked up once).
    async fn mode(&self) -> Result<bool, NatsError> {
        let probe = match &self.subject_header {
            Some(_) => format!("{}.>", self.subject),
            None => self.subject.clone(),
        };
        self.jetstream
            .get_or_try_init(|| async {
                let jetstream = &self.shared.jetstream;
                match jetstream.stream_by_subject(probe.clone()).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => Ok(false),
                    Err(e) => Err(NatsError::Lookup {
                        subject: probe.clone(),
                        source: e,
                    }),
                }
            })
            .await
            .copied()
    }
}

/// One token of a subject: printable ASCII without `.`, `*`, `>` or whitespace.
fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
}

/// A subject one may publish on: tokens separated by `.`, no wildcards.
fn valid_subject(subject: &str) -> bool {
    subject.len() <= 4096 && subject.split('.').all(valid_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        for good in ["a", "webhooks.orders", "a-b_c.D9", "$JS.x"] {
            assert!(valid_subject(good), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "a\tb", "ü"] {
            assert!(!valid_subject(bad), "{bad}");
        }
    }
}
