//! De-duplication by the provider's delivery id: an id whose webhook was delivered within
//! the window is answered 200 again without a second delivery. In memory, per webhook.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderName;
use serde::Deserialize;
use webhook_core::{BoxFuture, BuildError, RequestView};

/// Sweep expired ids every this many insertions.
const SWEEP_EVERY: u64 = 1024;
/// At most this many ids are remembered per webhook; when full, ids are forgotten early.
const MAX_IDS: usize = 1_000_000;
/// The default window: one day.
const DEFAULT_WINDOW: u64 = 86_400;

/// `verify.dedup`: `true` (the provider's delivery id) or where the id is.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DedupConfig {
    /// `true`: the preset's delivery id; `false`: off.
    Enabled(bool),
    /// An explicit id source and window.
    Explicit(DedupSource),
}

/// Where the delivery id is, and for how long it is remembered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSource {
    /// A header holding the id (e.g. `X-GitHub-Delivery`).
    #[serde(default)]
    pub header: Option<String>,
    /// A JSON pointer into the body (e.g. `/id`).
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// Seconds an id is remembered (default 86400; at least the replay tolerance).
    #[serde(default, deserialize_with = "webhook_core::config::de::option_number")]
    pub window: Option<u64>,
    /// Keep the window in Redis (`redis://[:password@]host:port/db`) so that several
    /// instances share it (feature `redis`); default: the server's `--shared-redis-url`,
    /// else in memory.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (default `webhook-gateway:dedup`).
    #[serde(default)]
    pub key_prefix: Option<String>,
}

#[derive(Debug, Clone)]
enum IdSource {
    Header(HeaderName),
    JsonPointer(String),
}

/// Delivery ids delivered recently.
#[derive(Debug, Clone)]
pub(crate) struct Dedup {
    source: IdSource,
    window: Duration,
    store: Store,
}

#[derive(Debug, Clone)]
enum Store {
    Memory(Arc<Mutex<Seen>>),
    #[cfg(feature = "redis")]
    Redis(Arc<super::redis_store::RedisStore>),
}

/// The answer of a look-up: at once (memory) or after a round trip (Redis).
pub(crate) enum Lookup<'a> {
    Now(bool),
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Later(BoxFuture<'a, bool>),
}

#[derive(Debug, Default)]
struct Seen {
    ids: HashMap<Box<[u8]>, Instant>,
    /// The ids in the order they were remembered (= the order they expire: one window for
    /// all), so the oldest go first when the store is full.
    order: VecDeque<(Instant, Box<[u8]>)>,
    inserts: u64,
}

impl Seen {
    /// Forget the oldest id (if it was not remembered again since).
    fn forget_oldest(&mut self) -> bool {
        let Some((until, id)) = self.order.pop_front() else {
            return false;
        };
        if self.ids.get(&id) == Some(&until) {
            self.ids.remove(&id);
        }
        true
    }
}

impl Dedup {
    pub(crate) fn build(config: &DedupSource, tolerance: Option<u64>) -> Result<Self, BuildError> {
        let source = match (&config.header, &config.json_pointer) {
            (Some(header), None) => {
                IdSource::Header(HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    BuildError::key(
                        "dedup.header",
                        format!("`{header}` is not a valid header name"),
                    )
                })?)
            }
            (None, Some(pointer)) if pointer.starts_with('/') => {
                IdSource::JsonPointer(pointer.clone())
            }
            (None, Some(_)) => {
                return Err(BuildError::key("dedup.json_pointer", "must start with `/`"));
            }
            _ => {
                return Err(BuildError::key(
                    "dedup",
                    "set one of `header` and `json_pointer`, or `true` with a provider that has a delivery id",
                ));
            }
        };
        let window = config.window.unwrap_or(DEFAULT_WINDOW);
        if let Some(tolerance) = tolerance
            && window < tolerance
        {
            return Err(BuildError::key(
                "dedup.window",
                format!(
                    "must be at least the replay tolerance ({tolerance} s), or a replay outside the window would be delivered again"
                ),
            ));
        }
        if window == 0 {
            return Err(BuildError::key("dedup.window", "must be positive"));
        }
        let store = match crate::shared_redis::url_for(config.redis_url.as_ref()) {
            None => Store::Memory(Arc::default()),
            #[cfg(feature = "redis")]
            Some(url) => Store::Redis(Arc::new(super::redis_store::RedisStore::new(
                url,
                config
                    .key_prefix
                    .clone()
                    .unwrap_or_else(|| "webhook-gateway:dedup".to_owned()),
            )?)),
            #[cfg(not(feature = "redis"))]
            Some(_) => {
                return Err(BuildError::key(
                    "dedup.redis_url",
                    "this build has no Redis support; rebuild with `--features redis`",
                ));
            }
        };
        Ok(Self {
            source,
            window: Duration::from_secs(window),
            store,
        })
    }

    /// The request's delivery id, if it has one.
    pub(crate) fn id(&self, request: &RequestView<'_>) -> Option<Box<[u8]>> {
        match &self.source {
            IdSource::Header(name) => request
                .headers
                .get(name)
                .map(|v| v.as_bytes().trim_ascii())
                .filter(|v| !v.is_empty())
                .map(Box::from),
            IdSource::JsonPointer(pointer) => {
                let value: serde_json::Value = serde_json::from_slice(request.body).ok()?;
                match value.pointer(pointer)? {
                    serde_json::Value::String(text) if !text.is_empty() => {
                        Some(Box::from(text.as_bytes()))
                    }
                    serde_json::Value::Number(n) => Some(Box::from(n.to_string().as_bytes())),
                    _ => None,
                }
            }
        }
    }

    /// Whether `id` was delivered within the window.
    #[cfg_attr(not(feature = "redis"), allow(clippy::needless_pass_by_value))]
    pub(crate) fn lookup<'a>(&'a self, webhook_id: &'a str, id: Box<[u8]>) -> Lookup<'a> {
        match &self.store {
            Store::Memory(seen) => {
                let _ = webhook_id;
                let seen = match seen.lock() {
                    Ok(seen) => seen,
                    Err(poisoned) => poisoned.into_inner(),
                };
                Lookup::Now(
                    seen.ids
                        .get(&id)
                        .is_some_and(|until| *until > Instant::now()),
                )
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                let _ = &id;
                Lookup::Later(Box::pin(async move { redis.seen(webhook_id, &id).await }))
            }
        }
    }

    /// Remember `id` as delivered.
    pub(crate) fn remember<'a>(&'a self, webhook_id: &'a str, id: Box<[u8]>) -> BoxFuture<'a, ()> {
        match &self.store {
            Store::Memory(seen) => {
                let _ = webhook_id;
                let mut seen = match seen.lock() {
                    Ok(seen) => seen,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let now = Instant::now();
                seen.inserts += 1;
                if seen.inserts.is_multiple_of(SWEEP_EVERY) {
                    while seen.order.front().is_some_and(|(until, _)| *until <= now) {
                        seen.forget_oldest();
                    }
                }
                // full: the oldest ids go first, never all of them at once
                while seen.ids.len() >= MAX_IDS && seen.forget_oldest() {}
                let until = now + self.window;
                seen.order.push_back((until, id.clone()));
                seen.ids.insert(id, until);
                Box::pin(async {})
            }
            #[cfg(feature = "redis")]
            Store::Redis(redis) => {
                Box::pin(async move { redis.remember(webhook_id, &id, self.window).await })
            }
        }
    }
}
