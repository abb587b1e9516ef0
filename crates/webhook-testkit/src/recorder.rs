//! `test_recorder`: a destination for tests that records what it receives in a named
//! [`Sink`] and can be told to fail, or to be slow.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use webhook_core::{
    BuildContext, BuildError, Delivery, Module, ModuleError, NoConnection, Registry,
};

static SINKS: LazyLock<Mutex<HashMap<String, Arc<Sink>>>> = LazyLock::new(Default::default);

/// What a `test_recorder` destination received, and how it should behave.
#[derive(Debug, Default)]
pub struct Sink {
    received: Mutex<Vec<Delivery>>,
    failures_left: Mutex<u32>,
    attempts: Mutex<u32>,
    attempt_times: Mutex<Vec<Instant>>,
}

impl Sink {
    /// The sink called `name` (created on first use). Use a unique name per test.
    pub fn named(name: &str) -> Arc<Sink> {
        let mut sinks = SINKS.lock().unwrap();
        Arc::clone(sinks.entry(name.to_owned()).or_default())
    }

    /// Bodies delivered successfully, in order.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.body.clone())
            .collect()
    }

    /// Deliveries received successfully, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Fail the next `n` deliveries.
    pub fn fail_next(&self, n: u32) {
        *self.failures_left.lock().unwrap() = n;
    }

    /// Every delivery attempt so far, failed or not.
    pub fn attempts(&self) -> u32 {
        *self.attempts.lock().unwrap()
    }

    /// When each attempt started, in order.
    pub fn attempt_times(&self) -> Vec<Instant> {
        self.attempt_times.lock().unwrap().clone()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecorderConfig {
    pub sink: String,
    /// `unavailable`, `retryable` (default) or `permanent`: how failures are classified.
    #[serde(default)]
    pub fail_as: Option<String>,
    /// Milliseconds each delivery takes.
    #[serde(default)]
    pub delay_ms: u64,
    /// Failures carry this `Retry-After` (milliseconds).
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

#[derive(Debug)]
pub struct Recorder {
    sink: Arc<Sink>,
    fail_as: String,
    delay: Duration,
    retry_after: Option<Duration>,
}

impl Module for Recorder {
    const KIND: &'static str = "test_recorder";
    type Config = RecorderConfig;
    type Connection = NoConnection;

    async fn build(
        config: RecorderConfig,
        _: Option<NoConnection>,
        _: &BuildContext,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            sink: Sink::named(&config.sink),
            fail_as: config.fail_as.unwrap_or_else(|| "retryable".to_owned()),
            delay: Duration::from_millis(config.delay_ms),
            retry_after: config.retry_after_ms.map(Duration::from_millis),
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        *self.sink.attempts.lock().unwrap() += 1;
        self.sink.attempt_times.lock().unwrap().push(Instant::now());
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        {
            let mut left = self.sink.failures_left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                let err = match self.fail_as.as_str() {
                    "unavailable" => ModuleError::unavailable("test: told to be unavailable"),
                    "permanent" => ModuleError::permanent("test: told to refuse"),
                    _ => ModuleError::retryable("test: told to fail"),
                };
                return Err(match self.retry_after {
                    Some(after) => err.with_retry_after(after),
                    None => err,
                });
            }
        }
        self.sink.received.lock().unwrap().push(delivery.clone());
        Ok(())
    }
}

/// The server's registry plus `test_recorder`; transform workers are started from the
/// built `webhook-server` beside the test binary (`target/debug/`).
pub fn registry_with_recorder() -> Registry {
    let mut registry = webhook_server::registry::registry_with_workers(crate::server_binary());
    registry.register_module::<Recorder>();
    registry
}
