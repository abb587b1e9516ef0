//! State shared by several gateway instances through one Redis (feature `redis`): the
//! server-wide default URL (`--shared-redis-url`), and the client every shared store
//! (de-duplication windows, rate limits) is built on.
//!
//! A shared store never makes Redis a reason to refuse or lose a webhook: when Redis
//! cannot answer, each store falls back to what one instance can decide alone.

use std::sync::OnceLock;

static DEFAULT_URL: OnceLock<String> = OnceLock::new();

/// Make `url` the Redis of every shared store whose webhook config names none
/// (`rate_limit` and `verify.dedup`). Call it once, before the config is loaded; a later
/// call is ignored.
pub fn set_default_url(url: &str) {
    let _ = DEFAULT_URL.set(url.to_owned());
}

/// The Redis a shared store uses: its own `redis_url`, else the server-wide default.
pub(crate) fn url_for(own: Option<&String>) -> Option<&str> {
    own.map(String::as_str)
        .or_else(|| DEFAULT_URL.get().map(String::as_str))
}

#[cfg(feature = "redis")]
pub(crate) use client::SharedClient;

#[cfg(feature = "redis")]
mod client {
    use std::time::Duration;

    use fred::prelude::*;
    use fred::types::config::{Config as FredConfig, ReconnectPolicy};
    use tokio::sync::OnceCell;
    use webhook_core::BuildError;

    /// One Redis client, connected on first use and reconnecting in the background.
    pub(crate) struct SharedClient {
        client: Client,
        connected: OnceCell<()>,
        /// What the store is, for the log (`dedup`, `rate_limit`).
        what: &'static str,
    }

    impl std::fmt::Debug for SharedClient {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SharedClient")
                .field("what", &self.what)
                .finish_non_exhaustive()
        }
    }

    impl SharedClient {
        /// A client of `url`; `key` names the config key in errors (`dedup.redis_url`).
        pub(crate) fn new(url: &str, key: &str, what: &'static str) -> Result<Self, BuildError> {
            let config = FredConfig::from_url(url)
                .map_err(|e| BuildError::key(key, format!("is not a valid Redis URL: {e}")))?;
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
            .map_err(|e| BuildError::key(key, e.to_string()))?;
            Ok(Self {
                client,
                connected: OnceCell::new(),
                what,
            })
        }

        /// The client, after its first connection attempt (at most 2 s, once).
        pub(crate) async fn ready(&self) -> &Client {
            self.connected
                .get_or_init(|| async {
                    let _task = self.client.connect();
                    if tokio::time::timeout(Duration::from_secs(2), self.client.wait_for_connect())
                        .await
                        .is_err()
                    {
                        tracing::warn!(
                            store = self.what,
                            "redis not reachable yet; retrying in the background"
                        );
                    }
                })
                .await;
            &self.client
        }
    }

    /// Per-command options: one attempt, a short timeout, no waiting for a reconnection.
    pub(crate) fn command_options(timeout: Duration) -> Options {
        Options {
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(timeout),
            ..Options::default()
        }
    }
}

#[cfg(feature = "redis")]
pub(crate) use client::command_options;
