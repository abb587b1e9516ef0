use std::sync::Arc;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Confirmation};
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};

use crate::broker::Broker;
use crate::config::{RabbitConfig, RabbitConnection};
use crate::error::RabbitError;

/// How long a publish may wait for the broker's confirmation.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// The `rabbitmq` destination.
#[derive(Debug)]
pub struct RabbitMq {
    broker: Arc<Broker>,
    queue: String,
    exchange: String,
    routing_key: String,
    queue_arguments: FieldTable,
}

impl Module for RabbitMq {
    const KIND: &'static str = "rabbitmq";
    const CONNECTION_TYPES: &'static [&'static str] = &["rabbitmq"];
    const TOP_LEVEL_KEYS: &'static [&'static str] = &["queue_name"];
    type Config = RabbitConfig;
    type Connection = RabbitConnection;

    fn validate(config: &RabbitConfig, _: &BuildContext) -> Result<(), BuildError> {
        if config.queue_name.is_empty() || config.queue_name.len() > 255 {
            return Err(BuildError::key("queue_name", "must be 1 to 255 bytes"));
        }
        queue_arguments(&config.queue_arguments).map(|_| ())
    }

    async fn build(
        config: RabbitConfig,
        connection: Option<RabbitConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection =
            connection.ok_or_else(|| BuildError::other("a rabbitmq connection is required"))?;
        let name = context.connection_name.clone().unwrap_or_default();
        let broker = context
            .shared
            .get_or_try_init(&name, || async {
                Ok(Broker::new(name.clone(), &connection))
            })
            .await?;
        // Connect now so problems show at start-up; a broker that is down is not fatal:
        // deliveries answer 503 until it is back.
        if let Err(err) = broker.live().await {
            tracing::warn!(connection = %name, error = %err, "rabbitmq not reachable at start-up");
        }
        let routing_key = config
            .routing_key
            .clone()
            .unwrap_or_else(|| config.queue_name.clone());
        let queue_arguments = queue_arguments(&config.queue_arguments)?;
        Ok(Self {
            broker,
            queue_arguments,
            queue: config.queue_name,
            exchange: config.exchange,
            routing_key,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let live = self.broker.live().await.map_err(ModuleError::from)?;
        let result = async {
            if self.exchange.is_empty() {
                live.ensure_queue(&self.queue, &self.queue_arguments)
                    .await?;
            }
            let confirm = live
                .channel()
                .basic_publish(
                    self.exchange.as_str().into(),
                    self.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &delivery.body,
                    properties(delivery),
                )
                .await
                .map_err(RabbitError::Channel)?;
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(Ok(Confirmation::Ack(_) | Confirmation::NotRequested)) => Ok(()),
                Ok(Ok(Confirmation::Nack(_))) => Err(RabbitError::Nacked),
                Ok(Err(err)) => Err(RabbitError::Channel(err)),
                Err(_) => Err(RabbitError::Timeout),
            }
        }
        .await;
        // A failed operation closes its channel: reconnect rather than reuse it.
        if let Err(
            RabbitError::Channel(_) | RabbitError::Timeout | RabbitError::QueueMismatch { .. },
        ) = &result
        {
            self.broker.discard(&live).await;
        }
        result.map_err(ModuleError::from)
    }

    async fn health(&self) -> Result<(), ModuleError> {
        self.broker
            .live()
            .await
            .map(|_| ())
            .map_err(ModuleError::from)
    }

    async fn shutdown(&self) {
        self.broker.close().await;
    }
}

/// `queue_arguments` as an AMQP field table: strings, integers, floats and booleans.
fn queue_arguments(
    arguments: &serde_json::Map<String, serde_json::Value>,
) -> Result<FieldTable, BuildError> {
    use serde_json::Value;
    let mut table = FieldTable::default();
    for (name, value) in arguments {
        let amqp = match value {
            Value::String(text) => AMQPValue::LongString(text.as_str().into()),
            Value::Bool(flag) => AMQPValue::Boolean(*flag),
            Value::Number(number) => match (number.as_i64(), number.as_f64()) {
                (Some(int), _) => match i32::try_from(int) {
                    Ok(small) => AMQPValue::LongInt(small),
                    Err(_) => AMQPValue::LongLongInt(int),
                },
                (None, Some(float)) => AMQPValue::Double(float),
                (None, None) => {
                    return Err(BuildError::key(
                        format!("queue_arguments.{name}"),
                        "is out of range",
                    ));
                }
            },
            Value::Null | Value::Array(_) | Value::Object(_) => {
                return Err(BuildError::key(
                    format!("queue_arguments.{name}"),
                    "must be a string, a number or a boolean",
                ));
            }
        };
        table.insert(name.as_str().into(), amqp);
    }
    Ok(table)
}

/// Persistent, with the HTTP headers as AMQP headers, the content type and request id.
/// (Nothing more: every property costs the broker; an app id and timestamp cost ~10 % of
/// its confirm rate here, see BENCHMARKS.md.)
fn properties(delivery: &Delivery) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in delivery.headers.iter() {
        headers.insert(
            ShortString::from(name.as_str()),
            AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
        );
    }
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(headers)
        .with_message_id(ShortString::from(delivery.request_id.to_string()));
    if let Some(content_type) = delivery
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        properties = properties.with_content_type(ShortString::from(content_type));
    }
    properties
}
