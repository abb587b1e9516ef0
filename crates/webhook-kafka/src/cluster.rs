//! One rskafka client per connections.json entry, with its cached partition producers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use rskafka::BackoffConfig;
use rskafka::client::partition::UnknownTopicHandling;
use rskafka::client::producer::aggregator::RecordAggregator;
use rskafka::client::producer::{BatchProducer, BatchProducerBuilder};
use rskafka::client::{Client, ClientBuilder};
use tokio::sync::{Mutex, RwLock};

use crate::error::KafkaError;

/// How long one request may keep retrying before the delivery fails (and the sender is
/// told to retry).
const REQUEST_DEADLINE: Duration = Duration::from_secs(3);
/// After a failed connection attempt, deliveries fail at once for this long.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Records for one partition wait this long for company before their batch is sent.
const LINGER: Duration = Duration::from_millis(1);
/// Batching producers per partition. One producer sends one batch at a time; a few of them
/// keep several batches in flight, so throughput is not bound to one broker round trip per
/// batch. (Records of concurrent requests have no order to keep; a sender's sequential
/// requests still land in order, each waiting for its acknowledgement.)
const PRODUCERS_PER_PARTITION: usize = 4;
/// The largest batch (and so the largest record) sent in one request.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

pub(crate) type Producer = BatchProducer<RecordAggregator>;

/// The producers of one partition, used round robin.
pub(crate) struct ProducerPool {
    producers: Vec<Producer>,
    next: AtomicUsize,
}

impl ProducerPool {
    pub(crate) fn next(&self) -> &Producer {
        &self.producers[self.next.fetch_add(1, Ordering::Relaxed) % self.producers.len()]
    }
}

/// The shared client of one connection entry.
pub(crate) struct Cluster {
    name: String,
    brokers: Vec<String>,
    client: RwLock<Option<Arc<Client>>>,
    connecting: Mutex<Option<Instant>>,
    producers: StdMutex<HashMap<(String, i32), Arc<ProducerPool>>>,
    partitions: StdMutex<HashMap<String, i32>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub(crate) fn new(name: String, brokers: Vec<String>) -> Self {
        Self {
            name,
            brokers,
            client: RwLock::new(None),
            connecting: Mutex::new(None),
            producers: StdMutex::new(HashMap::new()),
            partitions: StdMutex::new(HashMap::new()),
        }
    }

    /// The client, connecting first when there is none (one attempt at a time). Once
    /// built, rskafka reconnects to brokers by itself.
    pub(crate) async fn client(&self) -> Result<Arc<Client>, KafkaError> {
        if let Some(client) = self.client.read().await.as_ref() {
            return Ok(Arc::clone(client));
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(client) = self.client.read().await.as_ref() {
            return Ok(Arc::clone(client));
        }
        if last_failure.is_some_and(|at| at.elapsed() < RETRY_PAUSE) {
            return Err(KafkaError::Reconnecting);
        }
        let built = ClientBuilder::new(self.brokers.clone())
            .client_id("webhook-gateway")
            .backoff_config(BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
                base: 2.0,
                deadline: Some(REQUEST_DEADLINE),
            })
            .build()
            .await;
        match built {
            Ok(client) => {
                *last_failure = None;
                let client = Arc::new(client);
                *self.client.write().await = Some(Arc::clone(&client));
                tracing::info!(connection = %self.name, brokers = ?self.brokers, "connected to kafka");
                Ok(client)
            }
            Err(err) => {
                *last_failure = Some(Instant::now());
                tracing::warn!(connection = %self.name, error = %err, "cannot connect to kafka");
                Err(KafkaError::Connect(err))
            }
        }
    }

    /// The number of partitions of `topic` (looked up once).
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        if let Some(&count) = self
            .partitions
            .lock()
            .ok()
            .and_then(|m| m.get(topic).copied())
            .as_ref()
        {
            return Ok(count);
        }
        let client = self.client().await?;
        let topics = client.list_topics().await.map_err(KafkaError::Client)?;
        let Some(found) = topics.iter().find(|t| t.name == topic) else {
            return Err(KafkaError::UnknownTopic(topic.to_owned()));
        };
        let count = i32::try_from(found.partitions.len()).unwrap_or(i32::MAX);
        if let Ok(mut map) = self.partitions.lock() {
            map.insert(topic.to_owned(), count);
        }
        Ok(count)
    }

    /// The batching producers of one partition (created once).
    pub(crate) async fn producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<ProducerPool>, KafkaError> {
        let key = (topic.to_owned(), partition);
        if let Some(pool) = self
            .producers
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return Ok(pool);
        }
        let client = self.client().await?;
        let partition_client = Arc::new(
            client
                .partition_client(topic, partition, UnknownTopicHandling::Error)
                .await
                .map_err(KafkaError::Client)?,
        );
        let producers = (0..PRODUCERS_PER_PARTITION)
            .map(|_| {
                BatchProducerBuilder::new(Arc::clone(&partition_client))
                    .with_linger(LINGER)
                    .build(RecordAggregator::new(MAX_BATCH_BYTES))
            })
            .collect();
        let pool = Arc::new(ProducerPool {
            producers,
            next: AtomicUsize::new(0),
        });
        let mut map = match self.producers.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        Ok(Arc::clone(map.entry(key).or_insert(pool)))
    }
}
