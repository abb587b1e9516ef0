//! The pipeline in service and its reload: a new configuration is read, checked and built
//! completely, then swapped in atomically. Requests already running finish on the pipeline
//! they started with; destinations whose configuration did not change are kept with their
//! connections ([`Pipeline::rebuild`]); the others are shut down once the old pipeline has
//! drained. On any error the old configuration keeps serving and the errors are reported.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use webhook_core::config::{Config, ConfigErrors, ConfigSource, Env, parse};
use webhook_core::{Pipeline, PipelineOptions, Registry};

/// The files a reload reads again.
#[derive(Debug, Clone)]
pub struct ConfigFiles {
    /// webhooks.json.
    pub webhooks: PathBuf,
    /// connections.json, if any.
    pub connections: Option<PathBuf>,
}

/// A configuration as read from its files: parsed, plus the text of webhooks.json (for
/// the OpenAPI document).
#[derive(Debug)]
pub struct LoadedConfig {
    /// The parsed configuration.
    pub config: Config,
    /// webhooks.json as read.
    pub webhooks_text: String,
}

impl ConfigFiles {
    /// The config files to use: `webhooks`/`connections` when given, else `webhooks.json`
    /// and `connections.json` in the working directory when they exist; `None` when there
    /// is no webhooks file (the embedded demo config is served then).
    pub fn find(webhooks: Option<&Path>, connections: Option<&Path>) -> Option<Self> {
        let webhooks = match webhooks {
            Some(path) => path.to_path_buf(),
            None if Path::new("webhooks.json").exists() => PathBuf::from("webhooks.json"),
            None => return None,
        };
        let connections = match connections {
            Some(path) => Some(path.to_path_buf()),
            None if Path::new("connections.json").exists() => {
                Some(PathBuf::from("connections.json"))
            }
            None => None,
        };
        Some(Self {
            webhooks,
            connections,
        })
    }

    /// Read and parse the files with `registry`: what start-up and every reload do.
    pub fn load(&self, registry: &Registry) -> Result<LoadedConfig, ConfigErrors> {
        let read = |path: &Path| ConfigSource::read(path).map_err(|e| ConfigErrors(vec![e]));
        let webhooks = read(&self.webhooks)?;
        let connections = self.connections.as_deref().map(read).transpose()?;
        tracing::info!(
            webhooks = webhooks.name(),
            connections = connections.as_ref().map(ConfigSource::name),
            "loading configuration"
        );
        let config = parse(registry, &webhooks, connections.as_ref(), &Env::process())?;
        tracing::info!(
            "compatibility with the Python original: destinations get the exact bytes received \
             (not a re-serialised payload), substituted values are used verbatim, files stay \
             inside the data directory, and credentials are masked only where a webhook sets \
             credential_cleanup (README: Coming from the Python service)"
        );
        Ok(LoadedConfig {
            config,
            webhooks_text: webhooks.text().to_owned(),
        })
    }
}

/// Why a reload was refused; the old configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The server was started without config files (e.g. the embedded demo).
    #[error("this server has no config files to reload")]
    NoFiles,
    /// The new configuration has errors (each names file, webhook and key).
    #[error("the new configuration was rejected:\n{}", .0.join("\n"))]
    Rejected(Vec<String>),
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// Webhook ids now served.
    pub webhooks: Vec<String>,
}

/// The pipeline being served, swappable.
pub struct LivePipeline {
    current: ArcSwap<Pipeline>,
    openapi: ArcSwapOption<Bytes>,
    source: Option<(ConfigFiles, Registry, PipelineOptions)>,
    reloading: tokio::sync::Mutex<()>,
    drain_timeout: Duration,
    health: crate::health::HealthCache,
}

impl std::fmt::Debug for LivePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LivePipeline")
            .field("files", &self.source.as_ref().map(|s| &s.0))
            .finish_non_exhaustive()
    }
}

impl LivePipeline {
    /// A pipeline that cannot be reloaded.
    pub fn fixed(pipeline: Pipeline) -> Self {
        Self {
            current: ArcSwap::from_pointee(pipeline),
            openapi: ArcSwapOption::empty(),
            source: None,
            reloading: tokio::sync::Mutex::new(()),
            drain_timeout: Duration::from_secs(30),
            health: crate::health::HealthCache::default(),
        }
    }

    /// A pipeline that reloads from `files`, parsed with `registry` and built with
    /// `options`; replaced destinations are shut down after at most `drain_timeout`.
    pub fn from_files(
        pipeline: Pipeline,
        files: ConfigFiles,
        registry: Registry,
        options: PipelineOptions,
        drain_timeout: Duration,
    ) -> Self {
        Self {
            source: Some((files, registry, options)),
            drain_timeout,
            ..Self::fixed(pipeline)
        }
    }

    /// The pipeline to handle the next request with.
    pub fn current(&self) -> Arc<Pipeline> {
        self.current.load_full()
    }

    /// The cached `/health` result of the current configuration.
    pub fn health(&self) -> &crate::health::HealthCache {
        &self.health
    }

    /// The OpenAPI document of the current configuration, if it is served.
    pub fn openapi(&self) -> Option<Arc<Bytes>> {
        self.openapi.load_full()
    }

    /// Serve `document` at `/openapi.json` (`None`: not at all).
    pub fn set_openapi(&self, document: Option<Bytes>) {
        self.openapi.store(document.map(Arc::new));
    }

    /// A hash of the config files' contents (following symlinks, as a Kubernetes ConfigMap
    /// swap needs), to notice changes by polling; `None` without files.
    pub fn files_signature(&self) -> Option<u64> {
        let (files, _, _) = self.source.as_ref()?;
        let mut hasher = DefaultHasher::new();
        std::fs::read(&files.webhooks).ok().hash(&mut hasher);
        files
            .connections
            .as_ref()
            .map(|path| std::fs::read(path).ok())
            .hash(&mut hasher);
        Some(hasher.finish())
    }

    /// Read, check and build the configuration again, then swap it in.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let (files, registry, options) = self.source.as_ref().ok_or(ReloadError::NoFiles)?;
        let rejected = |errors: ConfigErrors| {
            ReloadError::Rejected(errors.0.iter().map(ToString::to_string).collect())
        };
        let loaded = files.load(registry).map_err(rejected)?;
        let old = self.current.load_full();
        let new = Arc::new(
            old.rebuild(loaded.config, options.clone())
                .await
                .map_err(rejected)?,
        );
        self.current.store(Arc::clone(&new));
        self.health.clear();
        if self.openapi.load().is_some() {
            self.set_openapi(Some(Bytes::from(
                crate::openapi::document(&loaded.webhooks_text).to_string(),
            )));
        }
        let report = ReloadReport {
            webhooks: new.webhook_ids().into_iter().map(str::to_owned).collect(),
        };
        tracing::info!(webhooks = ?report.webhooks, "configuration reloaded");
        // Close what the new pipeline did not keep, once requests on the old one are done.
        let drain = self.drain_timeout;
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + drain;
            while Arc::strong_count(&old) > 1 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            old.shutdown_replaced(&new).await;
        });
        Ok(report)
    }

    /// Reload whenever the config files' contents change, checking every `interval`.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut last = self.files_signature();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = self.files_signature();
            if now == last {
                continue;
            }
            last = now;
            match self.reload().await {
                Ok(_) => tracing::info!("config files changed: reloaded"),
                Err(err) => {
                    tracing::error!(error = %err, "config files changed: reload refused, the old configuration keeps serving");
                }
            }
        }
    }
}
