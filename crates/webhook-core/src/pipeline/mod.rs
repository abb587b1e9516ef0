//! The pipeline: a built configuration serving requests. Its rooms: `build.rs` builds and
//! rebuilds it from a [`Config`] (reusing unchanged destinations on reload), `request.rs` is
//! the request path of `POST /webhook/{id}`, `dry_run.rs` runs a sample through filters and transforms without
//! delivering (test before deploy), `ops.rs` the operations around it (health,
//! `/stats`, dead letters, shutdown).

mod body;
mod build;
mod dry_run;
mod notes;
mod ops;
mod request;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use ipnet::IpNet;

use crate::DataType;
use crate::attempt::Route;
use crate::config::AckMode;
use crate::metrics::WebhookMetrics;
use crate::outbox::Outbox;
use crate::spool::SpoolOptions;
use crate::stats::{StatsStore, StatsWindows};
use crate::validator::DynValidator;

pub use body::BodyBudget;
pub use dry_run::{DryRunError, Sample};
pub use ops::Health;
pub use request::Handled;

/// The body type of every response the pipeline gives.
pub type ResponseBody = Full<Bytes>;

/// Limits and network settings of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Largest accepted body in bytes (default 10 MiB). Enforced while the body streams in,
    /// and at once when `Content-Length` announces more.
    pub max_body_bytes: usize,
    /// Deepest accepted nesting of a JSON body (default 50).
    pub max_json_depth: usize,
    /// Peers whose `X-Forwarded-For` is believed (default none: the socket peer is the
    /// client).
    pub trusted_proxies: Vec<IpNet>,
    /// How long a destination's health check may take (default 5 s).
    pub health_timeout: Duration,
    /// The directory that relative paths in destination configs resolve against and may
    /// not leave (default: the working directory).
    pub data_dir: PathBuf,
    /// A shared store for `/stats` (default none: counts are kept in memory only).
    pub stats_store: Option<Arc<dyn StatsStore>>,
    /// The acknowledgement mode of webhooks without an `ack` key (default
    /// [`AckMode::Persisted`]).
    pub default_ack: AckMode,
    /// Where and how big the spool is (opened when a webhook uses `persisted` or
    /// `accepted`).
    pub spool: SpoolOptions,
    /// A spool shared by several instances (default none: the local spool of `spool`).
    /// With one, the outbox is always opened (so this instance lists and replays the
    /// cluster's dead letters), `spool.max_bytes` bounds only what `accepted` webhooks hold
    /// in memory, and `spool.dead_letter_ttl` applies to the shared dead letters.
    pub shared_spool: Option<Arc<dyn crate::spool::shared::SharedSpool>>,
    /// How the shared spool is used (lease, commit timeout).
    pub shared_spool_options: crate::SharedSpoolOptions,
    /// Most deliveries in flight per destination, in every ack mode (default 64).
    pub destination_concurrency: usize,
    /// Time a body may take before the minimum rate applies (default 30 s): a body must be
    /// complete within `body_read_timeout + bytes received / min_body_rate`, or the request
    /// is answered 408.
    pub body_read_timeout: Duration,
    /// Bytes per second a slow body must keep up after `body_read_timeout` (default
    /// 8 KiB/s; 0: none).
    pub min_body_rate: u64,
    /// Request-body bytes held in memory across all requests (default 256 MiB); past it new
    /// bodies are answered 503 + `Retry-After`.
    pub body_budget: BodyBudget,
    /// Where the request history goes (default none: no history is recorded).
    pub history: Option<Arc<dyn crate::history::HistorySink>>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_json_depth: 50,
            trusted_proxies: Vec::new(),
            health_timeout: Duration::from_secs(5),
            data_dir: PathBuf::from("."),
            stats_store: None,
            default_ack: AckMode::Persisted,
            spool: SpoolOptions::default(),
            shared_spool: None,
            shared_spool_options: crate::SharedSpoolOptions::default(),
            destination_concurrency: 64,
            body_read_timeout: Duration::from_secs(30),
            min_body_rate: 8 * 1024,
            body_budget: BodyBudget::new(256 << 20),
            history: None,
        }
    }
}

struct Webhook {
    id: Arc<str>,
    data_type: DataType,
    validators: Vec<Arc<dyn DynValidator>>,
    /// How many of `validators`, from the front, need no body (run before it is read).
    head_validators: usize,
    /// `credential_cleanup`: masks credential fields before the spool and destinations.
    cleanup: Option<crate::cleanup::CredentialCleanup>,
    /// `filter`: what a request must match to be stored and delivered.
    filter: Option<crate::filter::Filter>,
    /// `history`: bodies kept in the request history or not.
    history: crate::history::HistoryConfig,
    /// The server's trusted proxies and the webhook's own `trusted_proxies`.
    trusted_proxies: Vec<IpNet>,
    /// Headers holding the gateway's own inbound credentials, removed before delivery.
    strip_headers: Vec<http::HeaderName>,
    route: Arc<Route>,
    ack: AckMode,
    stats: Arc<Mutex<StatsWindows>>,
    metrics: WebhookMetrics,
}

/// The validation pipeline and delivery engine for a set of webhooks.
///
/// Build it once from a [`Config`], share it (`Arc<Pipeline>`) between connections and call
/// [`Pipeline::handle_webhook`] for each `POST /webhook/{id}`.
pub struct Pipeline {
    webhooks: HashMap<Arc<str>, Webhook>,
    options: PipelineOptions,
    outbox: Option<Arc<Outbox>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("webhooks", &self.webhook_ids())
            .field("options", &self.options)
            .finish()
    }
}

impl Pipeline {
    /// The options this pipeline runs with.
    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    /// The configured webhook ids, sorted.
    pub fn webhook_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.webhooks.keys().map(|id| &**id).collect();
        ids.sort_unstable();
        ids
    }
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
