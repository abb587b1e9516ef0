//! The Redis-backed de-duplication window (feature `redis`): several gateway instances
//! pointed at one Redis share it. `EXISTS` before delivery, `SET … EX window` after.
//! When Redis cannot be reached the request is delivered (at least once) and a warning
//! logged: de-duplication is never a reason to refuse or lose a webhook.

use std::time::Duration;

use fred::prelude::*;
use fred::types::Expiration;
use fred::types::config::{Config as FredConfig, ReconnectPolicy};
use tokio::sync::OnceCell;
use webhook_core::BuildError;

/// One Redis client for a webhook's de-duplication window.
pub(crate) struct RedisStore {
    client: Client,
    connected: OnceCell<()>,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn options() -> Options {
    Options {
        fail_fast: true,
        max_attempts: Some(1),
        timeout: Some(Duration::from_secs(1)),
        ..Options::default()
    }
}

impl RedisStore {
    pub(crate) fn new(url: &str, prefix: String) -> Result<Self, BuildError> {
        let config = FredConfig::from_url(url).map_err(|e| {
            BuildError::key("dedup.redis_url", format!("is not a valid Redis URL: {e}"))
        })?;
        let client = Builder::from_config(FredConfig {
            fail_fast: true,
            ..config
        })
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.max_command_attempts = 1;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .map_err(|e| BuildError::key("dedup.redis_url", e.to_string()))?;
        Ok(Self {
            client,
            connected: OnceCell::new(),
            prefix,
        })
    }

    async fn ready(&self) {
        self.connected
            .get_or_init(|| async {
                let _task = self.client.connect();
                if tokio::time::timeout(Duration::from_secs(2), self.client.wait_for_connect())
                    .await
                    .is_err()
                {
                    tracing::warn!("dedup: redis not reachable yet; retrying in the background");
                }
            })
            .await;
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
        self.ready().await;
        let found: Result<i64, Error> = self
            .client
            .with_options(&options())
            .exists(self.key(webhook_id, id))
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
        self.ready().await;
        let seconds = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let stored: Result<(), Error> = self
            .client
            .with_options(&options())
            .set(
                self.key(webhook_id, id),
                1,
                Some(Expiration::EX(seconds)),
                None,
                false,
            )
            .await;
        if let Err(err) = stored {
            tracing::warn!(webhook = webhook_id, error = %err, "dedup: could not record the delivery id in redis");
        }
    }
}
