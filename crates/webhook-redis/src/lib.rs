//! Redis destinations of the webhook gateway, on one long-lived, self-reconnecting `fred`
//! client per connections.json entry:
//!
//! * `redis_rq` enqueues an [RQ](https://python-rq.org) job calling `function(payload,
//!   headers)` that an unmodified Python `rq worker` runs. The default serializer is pickle
//!   (what existing workers use): JSON bodies arrive as dicts/lists, blob bodies as
//!   `bytes`, headers as a dict. `serializer: "json"` serves workers started with
//!   `--serializer rq.serializers.JSONSerializer` (blob bodies must then be UTF-8).
//! * `redis_publish` publishes `{"payload": …, "headers": {…}}` on a channel; a JSON body is
//!   embedded byte for byte, a blob body as a string (base64 with `"encoding": "base64"`
//!   when it is not UTF-8).
//! * `redis_stream` adds an entry to a stream (`XADD`, optionally `MAXLEN ~ n`) with the
//!   fields `webhook_id`, `request_id`, `received_at` (Unix milliseconds), `body` (the exact
//!   bytes received) and `header:<name>` for the headers named in `headers`.
//!
//! ```json
//! {"jobs": {"module": "redis_rq", "connection": "redis_local",
//!           "module-config": {"function": "tasks.handle_webhook", "queue_name": "webhooks"}}}
//! ```

mod client;
mod config;
mod error;
mod publish;
mod rq;
pub mod stats;
mod stream;

pub use config::{PublishConfig, RedisConnection, RqConfig, RqSerializer, StreamConfig};
pub use publish::RedisPublish;
pub use rq::RedisRq;
pub use stream::RedisStream;

/// Add `redis_rq`, `redis_publish` and `redis_stream` to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry
        .register_module::<RedisRq>()
        .register_module::<RedisPublish>()
        .register_module::<RedisStream>();
}
