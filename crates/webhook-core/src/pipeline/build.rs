//! Building a pipeline from a [`Config`], and rebuilding it on reload with what did not
//! change (open destinations, `/stats` windows, the outbox and its spool) carried over.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Pipeline, PipelineOptions, Webhook};
use crate::attempt::{Destination, Route};
use crate::config::{AckMode, Config, ConfigError, ConfigErrors, DestinationPlan};
use crate::metrics::{DestinationMetrics, WebhookMetrics};
use crate::module::BuildContext;
use crate::outbox::{Outbox, SharedStore, Store};
use crate::retry::RetryPolicy;
use crate::spool::{MemoryQuota, Spool};
use crate::stats::StatsWindows;
use crate::{BuildError, DataType, SharedClients};

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
            let ack = plan.ack.unwrap_or(options.default_ack);
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
                    let metrics = if reused.metrics.transform.is_some() == dest.transform.is_some()
                    {
                        Arc::clone(&reused.metrics)
                    } else {
                        // the same series, with or without the transform's
                        Arc::new(DestinationMetrics::new(
                            &plan.id,
                            reused.module.kind(),
                            dest.transform.is_some(),
                        ))
                    };
                    destinations.push(Destination {
                        module: Arc::clone(&reused.module),
                        retry: RetryPolicy::new(&dest.retry, ack),
                        metrics,
                        fingerprint,
                        limit: Arc::clone(&reused.limit),
                        filter: dest.filter.clone(),
                        transform: dest.transform.clone(),
                    });
                    continue;
                }
                let context = build_context(&plan.id, plan.data_type, &dest, &data_dir, &shared);
                match dest.prepared.build(context).await {
                    Ok(module) => destinations.push(Destination {
                        metrics: Arc::new(DestinationMetrics::new(
                            &plan.id,
                            module.kind(),
                            dest.transform.is_some(),
                        )),
                        module,
                        retry: RetryPolicy::new(&dest.retry, ack),
                        fingerprint,
                        limit: Arc::new(tokio::sync::Semaphore::new(
                            options.destination_concurrency.max(1),
                        )),
                        filter: dest.filter.clone(),
                        transform: dest.transform.clone(),
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
                    cleanup: plan.cleanup,
                    filter: plan.filter,
                    history: plan.history,
                    trusted_proxies: options
                        .trusted_proxies
                        .iter()
                        .chain(&plan.trusted_proxies)
                        .copied()
                        .collect(),
                    strip_headers: strip_headers(&plan.validators, plan.forward_credentials),
                    head_validators: plan
                        .validators
                        .iter()
                        .take_while(|v| !v.needs_body())
                        .count(),
                    validators: plan.validators,
                    route: Arc::new(Route {
                        destinations,
                        chain: plan.chain,
                        history: options.history.clone(),
                    }),
                    ack,
                    stats: old.map_or_else(
                        || Arc::new(Mutex::new(StatsWindows::default())),
                        |w| Arc::clone(&w.stats),
                    ),
                },
            );
        }
        let needs_outbox = webhooks.values().any(|w| w.ack != AckMode::Delivered)
            || options.shared_spool.is_some();
        let mut outbox = previous.and_then(|p| p.outbox.clone());
        if outbox.is_none() && needs_outbox && errors.is_empty() {
            match open_store(&options).await {
                Ok(store) => outbox = Some(Outbox::new(store)),
                Err(err) => errors.push(err),
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

/// The headers holding the gateway's own inbound credentials (removed before delivery),
/// none when the webhook has `forward_credentials`.
pub(super) fn strip_headers(
    validators: &[Arc<dyn crate::validator::DynValidator>],
    forward_credentials: bool,
) -> Vec<http::HeaderName> {
    if forward_credentials {
        return Vec::new();
    }
    let mut names: Vec<http::HeaderName> = validators
        .iter()
        .flat_map(|v| v.credential_headers())
        .chain([http::header::PROXY_AUTHORIZATION])
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// The outbox's store: the shared spool when one is configured, else the local spool.
async fn open_store(options: &PipelineOptions) -> Result<Store, ConfigError> {
    if let Some(spool) = &options.shared_spool {
        let described = spool.describe();
        let store = SharedStore::start(Arc::clone(spool), options.shared_spool_options.clone())
            .await
            .map_err(|err| {
                ConfigError::new(
                    &described,
                    None,
                    "spool",
                    format!("cannot use the shared spool: {err}"),
                )
            })?;
        return Ok(Store::Shared {
            store,
            memory: MemoryQuota::new(&options.spool),
            dead_letter_ttl: options.spool.dead_letter_ttl,
        });
    }
    let spool_options = options.spool.clone();
    let failed = |err: &dyn std::fmt::Display| {
        ConfigError::new(
            &options.spool.dir.display().to_string(),
            None,
            "spool",
            format!("cannot open the spool: {err}"),
        )
    };
    match tokio::task::spawn_blocking(move || Spool::open(spool_options)).await {
        Ok(Ok(spool)) => Ok(Store::Local(spool)),
        Ok(Err(err)) => Err(failed(&err)),
        Err(err) => Err(failed(&err)),
    }
}
