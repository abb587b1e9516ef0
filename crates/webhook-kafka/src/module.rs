use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use http::HeaderName;
use rskafka::chrono::{DateTime, Utc};
use rskafka::record::Record;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};

use crate::cluster::Cluster;
use crate::config::{KafkaConfig, KafkaConnection};
use crate::error::KafkaError;
use crate::partitioner::partition_for_key;

/// How long a record may wait for its acknowledgement.
const PRODUCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// The `kafka` destination.
#[derive(Debug)]
pub struct Kafka {
    cluster: Arc<Cluster>,
    topic: String,
    key: Option<Vec<u8>>,
    key_from_header: Option<HeaderName>,
    partition: Option<i32>,
    forward_headers: bool,
    next: AtomicU32,
}

impl Module for Kafka {
    const KIND: &'static str = "kafka";
    const CONNECTION_TYPES: &'static [&'static str] = &["kafka"];
    const TOP_LEVEL_KEYS: &'static [&'static str] = &["topic"];
    type Config = KafkaConfig;
    type Connection = KafkaConnection;

    fn validate(config: &KafkaConfig, _: &BuildContext) -> Result<(), BuildError> {
        let valid_topic = !config.topic.is_empty()
            && config.topic.len() <= 249
            && config
                .topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_topic {
            return Err(BuildError::key(
                "topic",
                "must be 1-249 characters of [A-Za-z0-9._-]",
            ));
        }
        if config.partition.is_some_and(|p| p < 0) {
            return Err(BuildError::key("partition", "must not be negative"));
        }
        if let Some(name) = &config.key_from_header
            && HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            return Err(BuildError::key(
                "key_from_header",
                format!("`{name}` is not a valid header name"),
            ));
        }
        Ok(())
    }

    async fn build(
        config: KafkaConfig,
        connection: Option<KafkaConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection =
            connection.ok_or_else(|| BuildError::other("a kafka connection is required"))?;
        let brokers = connection.brokers();
        if brokers.is_empty() {
            return Err(BuildError::other("connection has no bootstrap_servers"));
        }
        let name = context.connection_name.clone().unwrap_or_default();
        let cluster = context
            .shared
            .get_or_try_init(&name, || async { Ok(Cluster::new(name.clone(), brokers)) })
            .await?;
        // A reachable broker without the topic is a configuration error; an unreachable one
        // is not fatal (deliveries answer 503 until it is back).
        match cluster.partition_count(&config.topic).await {
            Ok(count) => {
                if let Some(partition) = config.partition
                    && partition >= count
                {
                    return Err(BuildError::key(
                        "partition",
                        format!(
                            "topic `{}` has {count} partition(s); {partition} does not exist",
                            config.topic
                        ),
                    ));
                }
            }
            Err(KafkaError::UnknownTopic(topic)) => {
                return Err(BuildError::key(
                    "topic",
                    format!(
                        "topic `{topic}` does not exist on kafka connection `{name}`; create it first"
                    ),
                ));
            }
            Err(err) => {
                tracing::warn!(connection = %name, error = %err, "kafka not reachable at start-up");
            }
        }
        let key_from_header = config
            .key_from_header
            .as_deref()
            .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok());
        Ok(Self {
            cluster,
            topic: config.topic,
            key: config.key.map(String::into_bytes),
            key_from_header,
            partition: config.partition,
            forward_headers: config.forward_headers,
            next: AtomicU32::new(0),
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        self.produce(delivery).await.map_err(ModuleError::from)
    }

    async fn health(&self) -> Result<(), ModuleError> {
        let client = self.cluster.client().await.map_err(ModuleError::from)?;
        client
            .list_topics()
            .await
            .map(|_| ())
            .map_err(|e| ModuleError::from(KafkaError::Client(e)))
    }
}

impl Kafka {
    async fn produce(&self, delivery: &Delivery) -> Result<(), KafkaError> {
        let key = self
            .key_from_header
            .as_ref()
            .and_then(|name| delivery.headers.get(name))
            .map(|value| value.as_bytes().to_vec())
            .or_else(|| self.key.clone());
        let partition = match self.partition {
            Some(partition) => partition,
            None => {
                let count = self.cluster.partition_count(&self.topic).await?;
                match &key {
                    Some(key) => partition_for_key(key, count),
                    None => {
                        (self.next.fetch_add(1, Ordering::Relaxed) % count.max(1) as u32) as i32
                    }
                }
            }
        };
        let pool = self.cluster.producers(&self.topic, partition).await?;
        let mut headers = BTreeMap::new();
        if self.forward_headers {
            for (name, value) in delivery.headers.iter() {
                headers.insert(name.as_str().to_owned(), value.as_bytes().to_vec());
            }
        }
        headers.insert(
            "x-request-id".to_owned(),
            delivery.request_id.to_string().into_bytes(),
        );
        let record = Record {
            key,
            value: Some(delivery.body.to_vec()),
            headers,
            timestamp: timestamp(delivery.received_at),
        };
        // rskafka retries inside its own deadline, but a batch whose broker vanished can wait
        // longer: bound it, so the sender hears 503 in time.
        match tokio::time::timeout(PRODUCE_TIMEOUT, pool.next().produce(record)).await {
            Ok(result) => result.map(|_offset| ()).map_err(KafkaError::Produce),
            Err(_) => Err(KafkaError::Timeout),
        }
    }
}

fn timestamp(time: std::time::SystemTime) -> DateTime<Utc> {
    let millis = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_default()
}
