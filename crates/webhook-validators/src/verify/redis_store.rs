//! The Redis-backed de-duplication window (feature `redis`): several gateway instances
//! pointed at one Redis share it. `EXISTS` before delivery, `SET … EX window` after.
//! When Redis cannot be reached the request is delivered (at least once) and a warning
//! logged: de-duplication is never a reason to refuse or lose a webhook.

use std::time::Duration;

use fred::prelude::*;
use fred::types::Expiration;
use webhook_core::BuildError;

use crate::shared_redis::{SharedClient, command_options};

/// One Redis client for a webhook's de-duplication window.
#[derive(Debug)]
pub(crate) struct RedisStore {
    client: SharedClient,
    prefix: String,
}

const TIMEOUT: Duration = Duration::from_secs(1);

fn options() -> Options {
    command_options(TIMEOUT)
}

/// `command` within [`TIMEOUT`] (fred keeps a command while it reconnects: the bound is
/// ours).
async fn bounded<T>(command: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    match tokio::time::timeout(TIMEOUT, command).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::new(ErrorKind::Timeout, "no answer within 1 s")),
    }
}

impl RedisStore {
    pub(crate) fn new(url: &str, prefix: String) -> Result<Self, BuildError> {
        Ok(Self {
            client: SharedClient::new(url, "dedup.redis_url", "dedup")?,
            prefix,
        })
    }

    fn key(&self, webhook_id: &str, id: &[u8]) -> Key {
        let mut key = Vec::with_capacity(self.prefix.len() + webhook_id.len() + id.len() + 2);
        key.extend_from_slice(self.prefix.as_bytes());
        key.push(b':');
        key.extend_from_slice(webhook_id.as_bytes());
        key.push(b':');
        key.extend_from_slice(id);
        Key::from(key.as_slice())
    }

    /// Whether `id` was delivered within the window; `false` when Redis cannot tell.
    pub(crate) async fn seen(&self, webhook_id: &str, id: &[u8]) -> bool {
        let client = self.client.ready().await;
        let found: Result<i64, Error> = bounded(
            client
                .with_options(&options())
                .exists(self.key(webhook_id, id)),
        )
        .await;
        match found {
            Ok(count) => count > 0,
            Err(err) => {
                tracing::warn!(webhook = webhook_id, error = %err, "dedup: redis lookup failed; delivering");
                false
            }
        }
    }

    /// Remember `id` for `window`.
    pub(crate) async fn remember(&self, webhook_id: &str, id: &[u8], window: Duration) {
        let seconds = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let client = self.client.ready().await;
        let stored: Result<(), Error> = bounded(client.with_options(&options()).set(
            self.key(webhook_id, id),
            1,
            Some(Expiration::EX(seconds)),
            None,
            false,
        ))
        .await;
        if let Err(err) = stored {
            tracing::warn!(webhook = webhook_id, error = %err, "dedup: could not record the delivery id in redis");
        }
    }
}
