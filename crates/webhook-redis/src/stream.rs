use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use fred::prelude::*;
use fred::types::streams::{XCap, XCapKind, XCapTrim};
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};

use crate::client;
use crate::config::{RedisConnection, StreamConfig};
use crate::error::RedisError;

/// `redis_stream`: `XADD stream [MAXLEN ~ n] * webhook_id … request_id … received_at …
/// body <raw bytes> header:<name> …`; confirmed by the entry id Redis replies with.
#[derive(Debug)]
pub struct RedisStream {
    client: Arc<Client>,
    stream: String,
    maxlen: Option<i64>,
    headers: Headers,
}

/// Which request headers go into the entry.
#[derive(Debug)]
enum Headers {
    All,
    Named(Vec<http::HeaderName>),
}

impl Module for RedisStream {
    const KIND: &'static str = "redis_stream";
    const CONNECTION_TYPES: &'static [&'static str] = &["redis-rq", "redis"];
    type Config = StreamConfig;
    type Connection = RedisConnection;

    fn validate(config: &StreamConfig, _: &BuildContext) -> Result<(), BuildError> {
        if config.stream.is_empty() || config.stream.len() > 512 {
            return Err(BuildError::key("stream", "must be 1 to 512 bytes"));
        }
        if let Some(maxlen) = config.maxlen
            && (maxlen == 0 || i64::try_from(maxlen).is_err())
        {
            return Err(BuildError::key("maxlen", "must be a positive number"));
        }
        headers(&config.headers).map(|_| ())
    }

    async fn build(
        config: StreamConfig,
        connection: Option<RedisConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let client = client::shared_client(connection, context).await?;
        Ok(Self {
            client,
            maxlen: config.maxlen.and_then(|n| i64::try_from(n).ok()),
            headers: headers(&config.headers)?,
            stream: config.stream,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        client::ensure_connected(&self.client)?;
        let received_ms = delivery
            .received_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut fields: Vec<(Key, Value)> = vec![
            ("webhook_id".into(), Value::from(&*delivery.webhook_id)),
            (
                "request_id".into(),
                Value::from(delivery.request_id.to_string()),
            ),
            ("received_at".into(), Value::from(received_ms.to_string())),
            ("body".into(), Value::Bytes(delivery.body.clone())),
        ];
        for (name, value) in delivery.headers.iter() {
            let wanted = match &self.headers {
                Headers::All => true,
                Headers::Named(names) => names.contains(name),
            };
            if wanted {
                fields.push((
                    Key::from(format!("header:{}", name.as_str())),
                    Value::Bytes(Bytes::copy_from_slice(value.as_bytes())),
                ));
            }
        }
        let cap = match self.maxlen {
            Some(n) => XCap::try_from((XCapKind::MaxLen, XCapTrim::AlmostExact, n))
                .map_err(|e| ModuleError::from(RedisError::from(e)))?,
            None => XCap::from(None::<()>),
        };
        let id: String = self
            .client
            .with_options(&client::command_options())
            .xadd(self.stream.as_str(), false, cap, "*", fields)
            .await
            .map_err(|e| ModuleError::from(RedisError::from(e)))?;
        tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, stream = %self.stream, id, "added to stream");
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        client::ping(&self.client).await
    }

    async fn shutdown(&self) {
        client::quit(&self.client).await;
    }
}

fn headers(names: &[String]) -> Result<Headers, BuildError> {
    if names.iter().any(|n| n == "*") {
        return Ok(Headers::All);
    }
    names
        .iter()
        .map(|name| {
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                BuildError::key("headers", format!("`{name}` is not a valid header name"))
            })
        })
        .collect::<Result<_, _>>()
        .map(Headers::Named)
}
