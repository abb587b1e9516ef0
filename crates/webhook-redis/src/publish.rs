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
    const CONNECTION_OPTIONAL: bool = true;
    const TOP_LEVEL_KEYS: &'static [&'static str] = &["redis"];
    type Config = PublishConfig;
    type Connection = RedisConnection;

    fn validate(config: &PublishConfig, context: &BuildContext) -> Result<(), BuildError> {
        if config.channel().is_empty() {
            return Err(BuildError::key("channel", "must not be empty"));
        }
        match (&config.redis, &context.connection_name) {
            (None, None) => Err(BuildError::other(
                "give a `connection` (a connections.json entry of type redis) or a `redis` \
                 block with its host and port",
            )),
            (Some(_), Some(_)) => Err(BuildError::key(
                "redis",
                "give either a `connection` or a `redis` block, not both",
            )),
            (Some(block), None) => match &block.allowed_hosts {
                Some(allowed) if !allowed.iter().any(|h| h.eq_ignore_ascii_case(&block.host)) => {
                    Err(BuildError::key(
                        "redis.host",
                        format!("`{}` is not in `allowed_hosts`", block.host),
                    ))
                }
                _ => Ok(()),
            },
            (None, Some(_)) => Ok(()),
        }
    }

    async fn build(
        config: PublishConfig,
        connection: Option<RedisConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let channel = config.channel().to_owned();
        let client = match (&config.redis, connection) {
            (Some(block), None) => client::inline_client(block.connection(), context).await?,
            (_, connection) => client::shared_client(connection, context).await?,
        };
        Ok(Self { client, channel })
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
