use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use fred::prelude::*;
use webhook_core::{BuildContext, BuildError, DataType, Delivery, Module, ModuleError};

use crate::config::{PublishConfig, RedisConnection};
use crate::error::RedisError;
use crate::{client, header_map};

/// `redis_publish`: `PUBLISH channel {"payload": …, "headers": {…}}`.
#[derive(Debug)]
pub struct RedisPublish {
    client: Arc<Client>,
    channel: String,
}

impl Module for RedisPublish {
    const KIND: &'static str = "redis_publish";
    const CONNECTION_TYPES: &'static [&'static str] = &["redis-rq", "redis"];
    type Config = PublishConfig;
    type Connection = RedisConnection;

    async fn build(
        config: PublishConfig,
        connection: Option<RedisConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        if config.channel.is_empty() {
            return Err(BuildError::key("channel", "must not be empty"));
        }
        Ok(Self {
            client: client::shared_client(connection, context).await?,
            channel: config.channel,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        client::ensure_connected(&self.client)?;
        let message = envelope(delivery).map_err(ModuleError::from)?;
        let receivers: i64 = self
            .client
            .with_options(&client::command_options())
            .publish(self.channel.as_str(), Bytes::from(message))
            .await
            .map_err(|e| ModuleError::from(RedisError::from(e)))?;
        tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, channel = %self.channel, receivers, "published");
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        client::ping(&self.client).await
    }

    async fn shutdown(&self) {
        client::quit(&self.client).await;
    }
}

/// `{"payload": <body>, "headers": {...}}`: a JSON body is embedded byte for byte.
pub(crate) fn envelope(delivery: &Delivery) -> Result<Vec<u8>, RedisError> {
    let headers = serde_json::to_vec(&header_map(&delivery.headers))?;
    let mut out = Vec::with_capacity(delivery.body.len() + headers.len() + 48);
    out.extend_from_slice(b"{\"payload\":");
    match (delivery.data_type, delivery.body_str()) {
        (DataType::Json, _) => out.extend_from_slice(&delivery.body),
        (DataType::Blob, Some(text)) => serde_json::to_writer(&mut out, text)?,
        (DataType::Blob, None) => {
            serde_json::to_writer(&mut out, &BASE64.encode(&delivery.body))?;
            out.extend_from_slice(b",\"encoding\":\"base64\"");
        }
    }
    out.extend_from_slice(b",\"headers\":");
    out.extend_from_slice(&headers);
    out.push(b'}');
    Ok(out)
}
