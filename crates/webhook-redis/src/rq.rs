use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};
use fred::prelude::*;
use webhook_core::{BuildContext, BuildError, DataType, Delivery, Module, ModuleError};

use crate::client;
use crate::config::{RedisConnection, RqConfig, RqSerializer};
use crate::error::RedisError;

/// `redis_rq`: enqueue an RQ job `function(payload, headers)` with the writes of
/// `Queue.enqueue`, in one pipelined round trip.
#[derive(Debug)]
pub struct RedisRq {
    client: Arc<Client>,
    config: RqConfig,
    queue_key: String,
    description: String,
}

impl Module for RedisRq {
    const KIND: &'static str = "redis_rq";
    const CONNECTION_TYPES: &'static [&'static str] = &["redis-rq", "redis"];
    const TOP_LEVEL_KEYS: &'static [&'static str] = &["queue_name"];
    type Config = RqConfig;
    type Connection = RedisConnection;

    fn validate(config: &RqConfig, _: &BuildContext) -> Result<(), BuildError> {
        let valid_path = !config.function.is_empty()
            && config.function.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
        if !valid_path {
            return Err(BuildError::key(
                "function",
                format!(
                    "`{}` is not a dotted Python path like `package.module.function`",
                    config.function
                ),
            ));
        }
        if config.queue_name.is_empty() {
            return Err(BuildError::key("queue_name", "must not be empty"));
        }
        Ok(())
    }

    async fn build(
        config: RqConfig,
        connection: Option<RedisConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            client: client::shared_client(connection, context).await?,
            queue_key: format!("rq:queue:{}", config.queue_name),
            description: format!("{}(payload, headers)", config.function),
            config,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        client::ensure_connected(&self.client)?;
        let data = self.job_data(delivery).map_err(ModuleError::from)?;
        let job_id = uuid::Uuid::new_v4().to_string();
        self.enqueue(&job_id, data)
            .await
            .map_err(|e| ModuleError::from(RedisError::from(e)))?;
        tracing::info!(
            webhook = %delivery.webhook_id,
            request_id = %delivery.request_id,
            job_id = %job_id,
            queue = %self.config.queue_name,
            "RQ job enqueued"
        );
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        client::ping(&self.client).await
    }

    async fn shutdown(&self) {
        client::quit(&self.client).await;
    }
}

impl RedisRq {
    /// `zlib(serializer((function, None, (payload, headers), {})))`, as RQ's `Job.data`.
    fn job_data(&self, delivery: &Delivery) -> Result<Vec<u8>, RedisError> {
        let headers = delivery.header_map();
        let function = self.config.function.as_str();
        let raw = match self.config.serializer {
            RqSerializer::Pickle => {
                let kwargs: BTreeMap<String, String> = BTreeMap::new();
                let options = serde_pickle::SerOptions::new();
                match delivery.data_type {
                    DataType::Json => serde_pickle::to_vec(
                        &(
                            function,
                            None::<()>,
                            (JsonAsPython(&delivery.body), &headers),
                            kwargs,
                        ),
                        options,
                    )?,
                    DataType::Blob => {
                        let payload = serde_bytes::Bytes::new(&delivery.body);
                        serde_pickle::to_vec(
                            &(function, None::<()>, (payload, &headers), kwargs),
                            options,
                        )?
                    }
                }
            }
            RqSerializer::Json => {
                // [function, null, [payload, headers], {}] with a JSON body embedded as is.
                let mut out = Vec::with_capacity(delivery.body.len() + 256);
                out.push(b'[');
                serde_json::to_writer(&mut out, function)?;
                out.extend_from_slice(b",null,[");
                match (delivery.data_type, delivery.body_str()) {
                    (DataType::Json, _) => out.extend_from_slice(&delivery.body),
                    (DataType::Blob, Some(text)) => serde_json::to_writer(&mut out, text)?,
                    (DataType::Blob, None) => return Err(RedisError::BlobNotUtf8),
                }
                out.push(b',');
                serde_json::to_writer(&mut out, &headers)?;
                out.extend_from_slice(b"],{}]");
                out
            }
        };
        Ok(zlib(&raw)?)
    }

    /// The writes of `Queue.enqueue`: register the queue, store the job hash, push its id.
    async fn enqueue(&self, job_id: &str, data: Vec<u8>) -> Result<(), fred::error::Error> {
        let now = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        let job_key = format!("rq:job:{job_id}");
        let fields: Vec<(&str, Value)> = vec![
            ("created_at", now.as_str().into()),
            ("data", Value::Bytes(Bytes::from(data))),
            ("success_callback_name", "".into()),
            ("failure_callback_name", "".into()),
            ("stopped_callback_name", "".into()),
            ("started_at", "".into()),
            ("ended_at", "".into()),
            ("last_heartbeat", "".into()),
            ("worker_name", "".into()),
            ("group_id", "".into()),
            ("origin", self.config.queue_name.as_str().into()),
            ("description", self.description.as_str().into()),
            ("enqueued_at", now.as_str().into()),
            ("timeout", i64::from(self.config.timeout).into()),
            ("status", "queued".into()),
        ];
        // One pipelined round trip, in this order: Redis runs the commands of one
        // connection in order, so a worker can never pop the id before the job hash exists.
        // (MULTI/EXEC would add nothing but serialise all enqueues on the connection.)
        let pipeline = self.client.pipeline();
        let _: () = pipeline.sadd("rq:queues", self.queue_key.as_str()).await?;
        let _: () = pipeline.hset(job_key.as_str(), fields).await?;
        let _: () = pipeline.rpush(self.queue_key.as_str(), job_id).await?;
        let _: Vec<Value> = pipeline.all().await?;
        Ok(())
    }
}

thread_local! {
    /// A deflate state is large (hash tables): build it once per thread, not once per job.
    static COMPRESSOR: std::cell::RefCell<Compress> = std::cell::RefCell::new(Compress::new(Compression::fast(), true));
}

/// zlib-compress `data` (what RQ's `zlib.decompress` reads).
fn zlib(data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut compressor = cell.borrow_mut();
        compressor.reset();
        let mut out = Vec::with_capacity(data.len() / 2 + 128);
        loop {
            let consumed = usize::try_from(compressor.total_in()).unwrap_or(usize::MAX);
            let input = data.get(consumed..).unwrap_or_default();
            match compressor.compress_vec(input, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(64)),
                Err(err) => return Err(std::io::Error::other(err)),
            }
        }
    })
}

/// A JSON body serialized straight into another format (pickle), without building a
/// `serde_json::Value` in between.
struct JsonAsPython<'a>(&'a [u8]);

impl serde::Serialize for JsonAsPython<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(self.0);
        serde_transcode::transcode(&mut deserializer, serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::zlib;

    #[test]
    fn zlib_round_trips_and_is_reusable() {
        use std::io::Read as _;
        for size in [0usize, 1, 100, 70_000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let compressed = zlib(&data).unwrap();
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(&compressed[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
    }
}
