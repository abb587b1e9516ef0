//! The configuration model: `webhooks.json` and `connections.json` in the original
//! service's format.
//!
//! Parsing is strict and reports every problem at once, each naming the file, the webhook id
//! (or connection name) and the key. It happens in two phases: [`parse`] checks the outer
//! webhook entries, builds the validators and parses each destination's own strict config
//! (no I/O); [`crate::Pipeline::build`] then connects the destinations.
//!
//! Its rooms: this file is the model (what a parsed configuration is); `parse.rs` the
//! parser of webhooks.json entries; `connections.rs` connections.json; `env.rs` the
//! `{$VAR}` substitution; `de.rs`, `secret.rs` and `error.rs` helpers.

mod connections;
pub mod de;
mod env;
mod error;
mod parse;
mod secret;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use env::Env;
pub use error::{ConfigError, ConfigErrors};
pub use parse::parse;
pub use secret::Secret;

use crate::DataType;
use crate::registry::PreparedModule;
use crate::validator::DynValidator;

/// The text of one config file and the name used for it in error messages.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    name: String,
    text: String,
}

impl ConfigSource {
    /// A config given as text; `name` is how errors refer to it (usually the file path).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Read a config file; errors name the file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self { name, text }),
            Err(err) => Err(ConfigError::new(
                &name,
                None,
                "",
                format!("cannot read file: {err}"),
            )),
        }
    }

    /// The file's text, as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The name used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// When the sender gets its answer (`ack` in webhooks.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Answer 2xx once the request is durably in the spool (fsync'd); deliver in the
    /// background with retries. 503 with `Retry-After` when the spool cannot take it.
    #[default]
    Persisted,
    /// Answer only after every destination confirmed (502/503 when one did not).
    Delivered,
    /// Answer at once; deliver in the background without durability (lost on a crash).
    Accepted,
}

impl AckMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Persisted => "persisted",
            AckMode::Delivered => "delivered",
            AckMode::Accepted => "accepted",
        }
    }
}

/// How a chain of destinations runs (`chain-config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    /// One destination after the other, in the listed order.
    #[default]
    Sequential,
    /// All destinations at once.
    Parallel,
}

/// `chain-config`: how the destinations of a webhook run.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// Sequential (default) or parallel.
    pub execution: Execution,
    /// Sequential chains: go on to the next destination after one failed (default true).
    /// The sender is still answered with a failure, so nothing is lost.
    pub continue_on_error: bool,
    /// Seconds one attempt of one destination may take (default 30); with `ack: delivered`
    /// also the longest the sender waits for the whole delivery, retries included.
    #[serde(deserialize_with = "de::number")]
    pub timeout: f64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            execution: Execution::Sequential,
            continue_on_error: true,
            timeout: 30.0,
        }
    }
}

/// `retry`: how often a retryable delivery failure is retried, in every ack mode.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Whether failed attempts are retried. Not set: on for `persisted`/`accepted`, off for
    /// `delivered` (where the sender retries).
    pub enabled: Option<bool>,
    /// Attempts in all, the first included (default 3).
    #[serde(deserialize_with = "de::number")]
    pub max_attempts: u32,
    /// Seconds before the first retry (default 1.0).
    #[serde(deserialize_with = "de::number")]
    pub initial_delay: f64,
    /// Upper bound of a delay in seconds (default 60.0).
    #[serde(deserialize_with = "de::number")]
    pub max_delay: f64,
    /// Growth of the delay per attempt (default 2.0).
    #[serde(deserialize_with = "de::number")]
    pub backoff_multiplier: f64,
    /// The original's Python exception names to retry: accepted and ignored (failures are
    /// classified by the destination here; a start-up line says so).
    pub retryable_errors: Option<serde::de::IgnoredAny>,
    /// The original's Python exception names never to retry: accepted and ignored.
    pub non_retryable_errors: Option<serde::de::IgnoredAny>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            max_attempts: 3,
            initial_delay: 1.0,
            max_delay: 60.0,
            backoff_multiplier: 2.0,
            retryable_errors: None,
            non_retryable_errors: None,
        }
    }
}

impl RetryConfig {
    fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(1..=100).contains(&self.max_attempts) {
            problems.push(("max_attempts", "must be between 1 and 100".to_owned()));
        }
        for (key, value) in [
            ("initial_delay", self.initial_delay),
            ("max_delay", self.max_delay),
        ] {
            if !(0.0..=86_400.0).contains(&value) {
                problems.push((key, "must be between 0 and 86400 seconds".to_owned()));
            }
        }
        if !(1.0..=100.0).contains(&self.backoff_multiplier) {
            problems.push(("backoff_multiplier", "must be between 1 and 100".to_owned()));
        }
        problems
    }
}

/// A checked configuration, ready for [`crate::Pipeline::build`].
pub struct Config {
    pub(crate) webhooks_file: String,
    pub(crate) webhooks: Vec<WebhookPlan>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("webhooks_file", &self.webhooks_file)
            .field("webhooks", &self.summaries().collect::<Vec<_>>())
            .finish()
    }
}

/// A short description of one configured webhook (for `check-config` and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSummary<'a> {
    /// The webhook id.
    pub id: &'a str,
    /// Its data type.
    pub data_type: DataType,
    /// Its validators' keys, in the order they run.
    pub validators: Vec<&'static str>,
    /// Its destinations' kinds, in chain order.
    pub destinations: Vec<&'a str>,
}

impl Config {
    /// The configured webhook ids, sorted.
    pub fn webhook_ids(&self) -> impl Iterator<Item = &str> {
        self.webhooks.iter().map(|w| &*w.id)
    }

    /// A summary of each webhook, sorted by id.
    pub fn summaries(&self) -> impl Iterator<Item = WebhookSummary<'_>> {
        self.webhooks.iter().map(|w| WebhookSummary {
            id: &w.id,
            data_type: w.data_type,
            validators: w.validators.iter().map(|v| v.key()).collect(),
            destinations: w.destinations.iter().map(|d| d.kind.as_str()).collect(),
        })
    }
}

pub(crate) struct WebhookPlan {
    pub(crate) id: Arc<str>,
    pub(crate) data_type: DataType,
    pub(crate) validators: Vec<Arc<dyn DynValidator>>,
    pub(crate) destinations: Vec<DestinationPlan>,
    pub(crate) chain: ChainConfig,
    /// `ack`, when the webhook sets it (else the pipeline's default).
    pub(crate) ack: Option<AckMode>,
    /// `forward_credentials`: pass the headers holding the gateway's own inbound
    /// credentials on to destinations (default false: they are removed).
    pub(crate) forward_credentials: bool,
    /// `trusted_proxies`: proxies whose `X-Forwarded-For` this webhook believes, on top of
    /// the server's (the original's per-webhook key).
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// `credential_cleanup`, when the entry has it and it is enabled.
    pub(crate) cleanup: Option<crate::cleanup::CredentialCleanup>,
    /// `filter`: requests that do not match are answered 200 and neither stored nor
    /// delivered.
    pub(crate) filter: Option<crate::filter::Filter>,
    /// `history`: whether the request history keeps bodies, and how much of each.
    pub(crate) history: crate::history::HistoryConfig,
}

pub(crate) struct DestinationPlan {
    pub(crate) kind: String,
    /// Where this destination's config sits in the webhook entry (`module-config`,
    /// `chain[1].module-config`), for errors raised while building it.
    pub(crate) config_key: String,
    pub(crate) connection_name: Option<String>,
    pub(crate) retry: RetryConfig,
    pub(crate) prepared: Box<dyn PreparedModule>,
    /// What the built destination depends on besides the webhook's data type (kind, module
    /// config, connection entry), so a reload can keep a destination that did not change.
    pub(crate) fingerprint: String,
    /// A chain item's `filter`: this destination gets only the requests that match.
    pub(crate) filter: Option<Arc<crate::filter::Filter>>,
    /// `transform`: the program that reshapes what this destination gets.
    pub(crate) transform: Option<crate::transform::DestinationTransform>,
}

/// A configured timeout in seconds as a [`Duration`]: between 1 ms and one hour.
///
/// # Errors
///
/// The message to report under the timeout's key when `seconds` is outside that range
/// (or not a number).
pub fn timeout_seconds(seconds: f64) -> Result<Duration, &'static str> {
    if (0.001..=3600.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err("must be between 0.001 and 3600 seconds")
    }
}
