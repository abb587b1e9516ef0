use std::sync::Arc;

use bytes::Bytes;
use fred::prelude::*;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};

use crate::client;
use crate::config::{PublishConfig, RedisConnection};
use crate::error::RedisError;

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
        let message = delivery.json_envelope(true);
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
