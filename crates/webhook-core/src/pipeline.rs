//! One request, from the HTTP layer to the destinations and back.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use ipnet::IpNet;
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::config::{AckMode, Config, ConfigError, ConfigErrors, DestinationPlan};
use crate::engine::{self, Destination};
use crate::metrics::{DestinationMetrics, WebhookMetrics};
use crate::module::BuildContext;
use crate::outbox::{Outbox, Route};
use crate::response::{self, json, json_bytes, set_retry_after};
use crate::spool::{DeadLetter, Spool, SpoolError, SpoolOptions};
use crate::stats::{StatsStore, StatsWindows};
use crate::validator::{Check, DynValidator, RequestView};
use crate::{BuildError, DataType, Delivery, ErrorClass, Rejection, RejectionKind, SharedClients};

/// The body type of every response the pipeline gives.
pub type ResponseBody = Full<Bytes>;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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
    /// Most background deliveries in flight per destination (default 64).
    pub destination_concurrency: usize,
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
            destination_concurrency: 64,
        }
    }
}

struct Webhook {
    id: Arc<str>,
    data_type: DataType,
    validators: Vec<Arc<dyn DynValidator>>,
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

/// The outcome of [`Pipeline::health`].
#[derive(Debug, Clone)]
pub struct Health {
    /// Every destination answered its health check.
    pub healthy: bool,
    /// `{"status": "healthy"|"unhealthy", "destinations": {id: [{module, status, error?}]}}`
    pub report: Value,
}

impl Pipeline {
    /// Build (connect) every destination of `config`. Errors name the webhook and key.
    pub async fn build(config: Config, options: PipelineOptions) -> Result<Self, ConfigErrors> {
        Self::build_reusing(config, options, None).await
    }

    /// Build a pipeline for a new config, keeping what did not change from `self`: a
    /// destination whose webhook id, data type, kind, module config and connection entry are
    /// the same is reused with its open connection instead of being built again, and the
    /// `/stats` windows of webhooks that still exist carry over. `self` keeps serving until
    /// the caller swaps; then [`Pipeline::shutdown_replaced`] closes what was not reused.
    pub async fn rebuild(
        &self,
        config: Config,
        options: PipelineOptions,
    ) -> Result<Self, ConfigErrors> {
        Self::build_reusing(config, options, Some(self)).await
    }

    /// Shut down the destinations of `self` that `newer` did not reuse.
    pub async fn shutdown_replaced(&self, newer: &Pipeline) {
        for webhook in self.webhooks.values() {
            for destination in &webhook.route.destinations {
                let kept = newer.webhooks.values().any(|w| {
                    w.route
                        .destinations
                        .iter()
                        .any(|d| Arc::ptr_eq(&d.module, &destination.module))
                });
                if !kept {
                    destination.module.shutdown().await;
                }
            }
        }
    }

    async fn build_reusing(
        config: Config,
        options: PipelineOptions,
        previous: Option<&Pipeline>,
    ) -> Result<Self, ConfigErrors> {
        config.validate(&options)?;
        let data_dir: Arc<Path> = Arc::from(options.data_dir.as_path());
        let shared = SharedClients::default();
        let mut errors = Vec::new();
        let mut webhooks = HashMap::with_capacity(config.webhooks.len());
        for plan in config.webhooks {
            let mut destinations = Vec::with_capacity(plan.destinations.len());
            let old = previous.and_then(|p| p.webhooks.get(&plan.id));
            for dest in plan.destinations {
                let fingerprint: Arc<str> =
                    Arc::from(format!("{}\n{}", plan.data_type.as_str(), dest.fingerprint));
                if let Some(reused) = old.and_then(|w| {
                    w.route
                        .destinations
                        .iter()
                        .find(|d| d.fingerprint == fingerprint)
                }) {
                    destinations.push(Destination {
                        module: Arc::clone(&reused.module),
                        retry: dest.retry,
                        metrics: Arc::clone(&reused.metrics),
                        fingerprint,
                        limit: Arc::clone(&reused.limit),
                    });
                    continue;
                }
                let context = build_context(&plan.id, plan.data_type, &dest, &data_dir, &shared);
                match dest.prepared.build(context).await {
                    Ok(module) => destinations.push(Destination {
                        metrics: Arc::new(DestinationMetrics::new(&plan.id, module.kind())),
                        module,
                        retry: dest.retry,
                        fingerprint,
                        limit: Arc::new(tokio::sync::Semaphore::new(
                            options.destination_concurrency.max(1),
                        )),
                    }),
                    Err(err) => errors.push(build_error(
                        &config.webhooks_file,
                        &plan.id,
                        &dest.kind,
                        &dest.config_key,
                        &err,
                    )),
                }
            }
            webhooks.insert(
                Arc::clone(&plan.id),
                Webhook {
                    metrics: WebhookMetrics::new(&plan.id),
                    id: plan.id,
                    data_type: plan.data_type,
                    validators: plan.validators,
                    route: Arc::new(Route {
                        destinations,
                        chain: plan.chain,
                    }),
                    ack: plan.ack.unwrap_or(options.default_ack),
                    stats: old.map_or_else(
                        || Arc::new(Mutex::new(StatsWindows::default())),
                        |w| Arc::clone(&w.stats),
                    ),
                },
            );
        }
        let needs_outbox = webhooks.values().any(|w| w.ack != AckMode::Delivered);
        let mut outbox = previous.and_then(|p| p.outbox.clone());
        if outbox.is_none() && needs_outbox && errors.is_empty() {
            let spool_options = options.spool.clone();
            let opened = tokio::task::spawn_blocking(move || Spool::open(spool_options)).await;
            match opened {
                Ok(Ok(spool)) => outbox = Some(Outbox::new(spool)),
                Ok(Err(err)) => errors.push(ConfigError::new(
                    &options.spool.dir.display().to_string(),
                    None,
                    "spool",
                    format!("cannot open the spool: {err}"),
                )),
                Err(err) => errors.push(ConfigError::new(
                    &options.spool.dir.display().to_string(),
                    None,
                    "spool",
                    format!("cannot open the spool: {err}"),
                )),
            }
        }
        let pipeline = Self {
            webhooks,
            options,
            outbox,
        };
        if errors.is_empty() {
            if let Some(outbox) = &pipeline.outbox {
                for webhook in pipeline.webhooks.values() {
                    if webhook.ack == AckMode::Accepted {
                        tracing::warn!(
                            webhook = %webhook.id,
                            "ack \"accepted\": answered before anything is stored; a crash loses what is in flight"
                        );
                    }
                }
                outbox.install(
                    pipeline
                        .webhooks
                        .iter()
                        .map(|(id, w)| (Arc::clone(id), Arc::clone(&w.route)))
                        .collect(),
                );
            }
            Ok(pipeline)
        } else {
            match previous {
                // Close only what this attempt opened; reused destinations keep serving.
                Some(previous) => pipeline.shutdown_replaced(previous).await,
                None => pipeline.shutdown().await,
            }
            Err(ConfigErrors(errors))
        }
    }

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

    /// Handle one request for webhook `webhook_id` (the `{id}` of `POST /webhook/{id}`).
    ///
    /// Reads the body up to the configured cap, runs the validators, checks the data type,
    /// delivers and answers: 200 only after every destination confirmed, 502/503 (with a
    /// JSON body) when delivery failed so the sender retries. Never panics on input.
    pub async fn handle_webhook<B>(
        &self,
        webhook_id: &str,
        request: Request<B>,
        peer: SocketAddr,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let received_at = SystemTime::now();
        let started = Instant::now();
        let request_id = Uuid::now_v7();
        let mut response = self
            .handle_inner(webhook_id, request, peer, received_at, request_id)
            .await;
        if let Some(webhook) = self.webhooks.get(webhook_id) {
            webhook
                .metrics
                .duration
                .record(started.elapsed().as_secs_f64());
        }
        let mut id_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id_text = request_id.hyphenated().encode_lower(&mut id_text);
        if let Ok(value) = HeaderValue::from_str(id_text) {
            response.headers_mut().insert(X_REQUEST_ID.clone(), value);
        }
        response
    }

    async fn handle_inner<B>(
        &self,
        webhook_id: &str,
        request: Request<B>,
        peer: SocketAddr,
        received_at: SystemTime,
        request_id: Uuid,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(webhook) = self.webhooks.get(webhook_id) else {
            return json(StatusCode::NOT_FOUND, response::NOT_FOUND);
        };
        webhook.metrics.received.increment(1);
        if request.method() != Method::POST {
            webhook.metrics.rejected("method_not_allowed");
            let mut response = json(StatusCode::METHOD_NOT_ALLOWED, response::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let (parts, body) = request.into_parts();
        let body = match read_body(body, &parts.headers, self.options.max_body_bytes).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                webhook.metrics.rejected("body_too_large");
                tracing::info!(webhook = webhook_id, %request_id, limit = self.options.max_body_bytes, "body over the size cap");
                return json(StatusCode::PAYLOAD_TOO_LARGE, response::TOO_LARGE);
            }
            Err(BodyError::Read(err)) => {
                webhook.metrics.rejected("body_unreadable");
                tracing::info!(webhook = webhook_id, %request_id, error = %err, "could not read the body");
                return json(StatusCode::BAD_REQUEST, response::BAD_BODY);
            }
        };

        let client_ip = client_ip(peer, &parts.headers, &self.options.trusted_proxies);
        let view = RequestView {
            webhook_id,
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            peer,
            client_ip,
            body: &body,
            received_at,
        };
        for validator in &webhook.validators {
            let verdict = match validator.check(&view) {
                Check::Pass => Ok(None),
                Check::Reject(rejection) => Err(rejection),
                Check::Answer(answer) => Ok(Some(answer)),
                Check::Pending(future) => future.await,
            };
            match verdict {
                Ok(None) => {}
                Ok(Some(answer)) => {
                    if answer.duplicate {
                        webhook.metrics.duplicate.increment(1);
                        if let Ok(mut stats) = webhook.stats.lock() {
                            stats.record_duplicate();
                        }
                    } else {
                        webhook.metrics.accepted.increment(1);
                    }
                    tracing::info!(
                        webhook = webhook_id,
                        %request_id,
                        validator = validator.key(),
                        reason = answer.reason,
                        "answered without delivery"
                    );
                    return json_bytes(answer.status, answer.body);
                }
                Err(rejection) => {
                    webhook.metrics.rejected(rejection.reason);
                    tracing::info!(
                        webhook = webhook_id,
                        %request_id,
                        client = %client_ip,
                        validator = validator.key(),
                        reason = rejection.reason,
                        "request rejected"
                    );
                    return reject(&rejection);
                }
            }
        }

        if webhook.data_type == DataType::Json
            && let Err(err) = crate::json::check(&body, self.options.max_json_depth)
        {
            webhook.metrics.rejected("malformed_json");
            tracing::info!(webhook = webhook_id, %request_id, error = %err, "malformed JSON body");
            return json(StatusCode::BAD_REQUEST, response::MALFORMED_JSON);
        }

        if let Ok(mut stats) = webhook.stats.lock() {
            stats.record(unix_secs(received_at));
        }
        if let Some(store) = &self.options.stats_store {
            store.record(webhook_id, unix_secs(received_at));
        }

        let delivery = Delivery {
            webhook_id: Arc::clone(&webhook.id),
            request_id,
            headers: Arc::new(parts.headers),
            body,
            received_at,
            data_type: webhook.data_type,
        };
        if webhook.ack != AckMode::Delivered {
            return self
                .accept_in_background(
                    webhook,
                    delivery,
                    (&parts.method, &parts.uri),
                    peer,
                    client_ip,
                )
                .await;
        }
        match engine::deliver(&webhook.route.destinations, &webhook.route.chain, &delivery).await {
            Ok(()) => {
                if webhook.validators.iter().any(|v| v.wants_delivered()) {
                    let view = RequestView {
                        webhook_id,
                        method: &parts.method,
                        uri: &parts.uri,
                        headers: &delivery.headers,
                        peer,
                        client_ip,
                        body: &delivery.body,
                        received_at,
                    };
                    for validator in webhook.validators.iter().filter(|v| v.wants_delivered()) {
                        validator.delivered(&view).await;
                    }
                }
                webhook.metrics.accepted.increment(1);
                json(StatusCode::OK, response::OK)
            }
            Err(err) => {
                webhook.metrics.failed.increment(1);
                match err.class() {
                    ErrorClass::Unavailable => {
                        let mut response =
                            json(StatusCode::SERVICE_UNAVAILABLE, response::UNAVAILABLE);
                        set_retry_after(
                            &mut response,
                            err.retry_after().unwrap_or(Duration::from_secs(5)),
                        );
                        response
                    }
                    ErrorClass::Retryable => {
                        let mut response = json(StatusCode::BAD_GATEWAY, response::DELIVERY_FAILED);
                        if let Some(delay) = err.retry_after() {
                            set_retry_after(&mut response, delay);
                        }
                        response
                    }
                    ErrorClass::Permanent => {
                        json(StatusCode::BAD_GATEWAY, response::DELIVERY_REJECTED)
                    }
                }
            }
        }
    }

    /// `persisted`/`accepted`: hand the request to the outbox and answer.
    async fn accept_in_background(
        &self,
        webhook: &Webhook,
        delivery: Delivery,
        (method, uri): (&Method, &http::Uri),
        peer: SocketAddr,
        client_ip: IpAddr,
    ) -> Response<ResponseBody> {
        let Some(outbox) = &self.outbox else {
            webhook.metrics.failed.increment(1);
            return json(StatusCode::SERVICE_UNAVAILABLE, response::SPOOL_FULL);
        };
        let Delivery {
            webhook_id,
            request_id,
            headers,
            body,
            received_at,
            data_type,
        } = delivery;
        let durable = webhook.ack == AckMode::Persisted;
        let accepted = outbox
            .accept(
                &webhook.route,
                webhook_id,
                request_id,
                received_at,
                data_type,
                Arc::clone(&headers),
                body.clone(),
                durable,
            )
            .await;
        if let Err(err) = accepted {
            webhook.metrics.failed.increment(1);
            tracing::warn!(webhook = %webhook.id, %request_id, error = %err, "spool cannot take the request");
            let mut response = json(StatusCode::SERVICE_UNAVAILABLE, response::SPOOL_FULL);
            set_retry_after(&mut response, Duration::from_secs(5));
            return response;
        }
        if webhook.validators.iter().any(|v| v.wants_delivered()) {
            let view = RequestView {
                webhook_id: &webhook.id,
                method,
                uri,
                headers: &headers,
                peer,
                client_ip,
                body: &body,
                received_at,
            };
            for validator in webhook.validators.iter().filter(|v| v.wants_delivered()) {
                validator.delivered(&view).await;
            }
        }
        webhook.metrics.accepted.increment(1);
        json(StatusCode::OK, response::OK)
    }

    /// The spool, when a webhook of this pipeline (or an earlier one) opened it.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.outbox.as_ref().map(|o| o.spool())
    }

    /// The dead letters (deliveries given up), oldest first; empty without a spool.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        let Some(spool) = self.spool().cloned() else {
            return Ok(Vec::new());
        };
        tokio::task::spawn_blocking(move || spool.dead_letters())
            .await
            .map_err(|_| SpoolError::Closed)?
    }

    /// Deliver dead letter `id` again (spooled anew for its one destination, same request
    /// id); it leaves the dead letters.
    pub async fn replay_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        match &self.outbox {
            Some(outbox) => outbox.replay(id).await,
            None => Err(SpoolError::NoDeadLetter(id.to_owned())),
        }
    }

    /// Drop dead letter `id` for good (not delivered); its bytes leave the spool's quota.
    pub async fn delete_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        let Some(spool) = self.spool().cloned() else {
            return Err(SpoolError::NoDeadLetter(id.to_owned()));
        };
        let owned = id.to_owned();
        tokio::task::spawn_blocking(move || spool.delete_dead_letter(&owned))
            .await
            .map_err(|_| SpoolError::Closed)?
    }

    /// The `/stats` answer: from the shared store when one is configured (an error when it
    /// cannot be read), else [`Pipeline::stats`]. `duplicates` always comes from this
    /// instance.
    pub async fn shared_stats(&self) -> Result<Value, String> {
        let Some(store) = &self.options.stats_store else {
            return Ok(self.stats());
        };
        let ids = self.webhook_ids();
        let mut shared = store.snapshot(&ids, unix_secs(SystemTime::now())).await?;
        let local = self.stats();
        if let (Value::Object(shared), Value::Object(local)) = (&mut shared, &local) {
            for (id, counts) in shared.iter_mut() {
                if let (Some(Value::Object(counts)), Some(duplicates)) = (
                    Some(counts),
                    local.get(id).and_then(|l| l.get("duplicates")),
                ) {
                    counts.insert("duplicates".into(), duplicates.clone());
                }
            }
        }
        Ok(shared)
    }

    /// Request counts per webhook in the original's shape:
    /// `{id: {total, minute, 5_minutes, 15_minutes, 30_minutes, hour, day, week, month}}`.
    pub fn stats(&self) -> Value {
        let now = unix_secs(SystemTime::now());
        let mut map = Map::new();
        for id in self.webhook_ids() {
            if let Some(webhook) = self.webhooks.get(id) {
                let snapshot = match webhook.stats.lock() {
                    Ok(stats) => stats.snapshot(now),
                    Err(poisoned) => poisoned.into_inner().snapshot(now),
                };
                map.insert(id.to_owned(), snapshot);
            }
        }
        Value::Object(map)
    }

    /// Ask every destination whether it is reachable (each within the health timeout).
    pub async fn health(&self) -> Health {
        let mut tasks = JoinSet::new();
        for (id, webhook) in &self.webhooks {
            for destination in &webhook.route.destinations {
                let id = Arc::clone(id);
                let module = Arc::clone(&destination.module);
                let limit = self.options.health_timeout;
                tasks.spawn(async move {
                    let result = match tokio::time::timeout(limit, module.health()).await {
                        Ok(result) => result.map_err(|err| err.chain()),
                        Err(_) => Err(format!("no answer within {}s", limit.as_secs_f64())),
                    };
                    (id, module.kind(), result)
                });
            }
        }
        let mut healthy = true;
        let mut per_webhook: Map<String, Value> = Map::new();
        while let Some(joined) = tasks.join_next().await {
            let (id, kind, result) = match joined {
                Ok(outcome) => outcome,
                Err(_) => {
                    healthy = false;
                    continue;
                }
            };
            let mut entry = Map::new();
            entry.insert("module".into(), kind.into());
            match result {
                Ok(()) => {
                    entry.insert("status".into(), "ok".into());
                }
                Err(message) => {
                    healthy = false;
                    entry.insert("status".into(), "error".into());
                    entry.insert("error".into(), message.into());
                }
            }
            if let Value::Array(list) = per_webhook
                .entry(id.to_string())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                list.push(Value::Object(entry));
            }
        }
        let mut report = Map::new();
        report.insert(
            "status".into(),
            if healthy { "healthy" } else { "unhealthy" }.into(),
        );
        report.insert("destinations".into(), Value::Object(per_webhook));
        Health {
            healthy,
            report: Value::Object(report),
        }
    }

    /// Flush and close every destination.
    pub async fn shutdown(&self) {
        for webhook in self.webhooks.values() {
            for destination in &webhook.route.destinations {
                destination.module.shutdown().await;
            }
        }
    }
}

impl Config {
    /// Check every destination config against `options` without any I/O (what
    /// `check-config` runs; [`Pipeline::build`] runs it too).
    pub fn validate(&self, options: &PipelineOptions) -> Result<(), ConfigErrors> {
        let data_dir: Arc<Path> = Arc::from(options.data_dir.as_path());
        let shared = SharedClients::default();
        let mut errors = Vec::new();
        for plan in &self.webhooks {
            for dest in &plan.destinations {
                let context = build_context(&plan.id, plan.data_type, dest, &data_dir, &shared);
                if let Err(err) = dest.prepared.validate(&context) {
                    errors.push(build_error(
                        &self.webhooks_file,
                        &plan.id,
                        &dest.kind,
                        &dest.config_key,
                        &err,
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn build_context(
    id: &Arc<str>,
    data_type: DataType,
    dest: &DestinationPlan,
    data_dir: &Arc<Path>,
    shared: &SharedClients,
) -> BuildContext {
    BuildContext {
        webhook_id: Arc::clone(id),
        data_type,
        connection_name: dest.connection_name.clone(),
        data_dir: Arc::clone(data_dir),
        shared: shared.clone(),
    }
}

fn build_error(
    file: &str,
    id: &str,
    kind: &str,
    config_key: &str,
    err: &BuildError,
) -> ConfigError {
    let key = if err.key.is_empty() {
        config_key.to_owned()
    } else {
        format!("{config_key}.{}", err.key)
    };
    ConfigError::new(
        file,
        Some(id),
        key,
        format!("module `{kind}`: {}", err.message),
    )
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn reject(rejection: &Rejection) -> Response<ResponseBody> {
    let body = match rejection.kind {
        RejectionKind::BadRequest => response::BAD_REQUEST,
        RejectionKind::Unauthorized => response::UNAUTHORIZED,
        RejectionKind::Forbidden => response::FORBIDDEN,
        RejectionKind::UnprocessableEntity => response::UNPROCESSABLE,
        RejectionKind::TooManyRequests => response::TOO_MANY,
    };
    let mut response = json(rejection.kind.status(), body);
    if let Some(delay) = rejection.retry_after {
        set_retry_after(&mut response, delay);
    }
    response
}

enum BodyError {
    TooLarge,
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// Read the whole body, refusing (without buffering) anything past `limit` bytes.
async fn read_body<B>(body: B, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) || body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(err) => Err(BodyError::Read(err)),
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.ip().to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for part in text.rsplit(',') {
            let Ok(ip) = part.trim().parse::<IpAddr>() else {
                return client;
            };
            client = ip.to_canonical();
            if !is_trusted(&client) {
                return client;
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let proxy: SocketAddr = "10.1.1.1:4000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let h = headers(&["198.51.100.7, 10.2.2.2"]);
        assert_eq!(client_ip(stranger, &h, &trusted), stranger.ip());
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // spoofed left-most entries are ignored: the right-most untrusted one counts
        let h = headers(&["1.1.1.1", "198.51.100.7"]);
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // garbage stops the walk at the last trusted hop
        let h = headers(&["nonsense"]);
        assert_eq!(client_ip(proxy, &h, &trusted), proxy.ip());
        // no trusted proxies: the header means nothing
        assert_eq!(client_ip(proxy, &headers(&["1.2.3.4"]), &[]), proxy.ip());
        // v4-mapped v6 peers are seen as v4
        let mapped: SocketAddr = "[::ffff:10.1.1.1]:80".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &headers(&["1.2.3.4"]), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }
}
