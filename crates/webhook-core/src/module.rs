use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::{BoxFuture, BuildError, DataType, Delivery, ModuleError, SharedClients};

/// A destination: where accepted webhooks are delivered.
///
/// Each destination lives in its own crate and is added to a [`crate::Registry`] with
/// [`crate::Registry::register_module`]. Writers use plain `async fn`; the pipeline holds
/// destinations as `Arc<dyn DynModule>` through the blanket impl of [`DynModule`].
///
/// A destination connects once in [`Module::build`] and reuses that connection for every
/// delivery. It classifies its failures in [`ModuleError`] and never sleeps or retries:
/// retries, backoff and timeouts are the pipeline's job.
pub trait Module: Sized + Send + Sync + 'static {
    /// The config's `module` string, e.g. `"save_to_disk"`.
    const KIND: &'static str;

    /// The `type` values of connections.json entries this destination accepts. Empty means
    /// the destination takes no `connection`; otherwise one is required.
    const CONNECTION_TYPES: &'static [&'static str] = &[];

    /// The destination can also take its server from its own config (`redis_publish`'s
    /// `redis` block): a missing `connection` is then not a config error, and
    /// [`Module::build`] gets `None` (its [`Module::validate`] says what is missing).
    const CONNECTION_OPTIONAL: bool = false;

    /// Keys that older config files put at the top level of a webhook instead of in
    /// `module-config` (`queue_name`, `topic`, `redis`). They are moved into the module config when
    /// it does not set them itself.
    const TOP_LEVEL_KEYS: &'static [&'static str] = &[];

    /// The strict (`deny_unknown_fields`) type of `module-config`.
    type Config: DeserializeOwned + Send + Sync + 'static;

    /// The type of the connections.json entry (without its `type` key). Destinations that
    /// take no connection use [`NoConnection`].
    type Connection: DeserializeOwned + Send + Sync + 'static;

    /// Build the destination from its config; connect here, once.
    fn build(
        config: Self::Config,
        connection: Option<Self::Connection>,
        context: &BuildContext,
    ) -> impl Future<Output = Result<Self, BuildError>> + Send;

    /// Check the config against its context without any I/O (e.g. that a path stays inside
    /// the data directory). Runs for `check-config` and before [`Module::build`]; the
    /// default accepts everything.
    fn validate(config: &Self::Config, context: &BuildContext) -> Result<(), BuildError> {
        let _ = (config, context);
        Ok(())
    }

    /// Deliver one webhook. Resolve only once the destination confirmed it.
    fn deliver(&self, delivery: &Delivery) -> impl Future<Output = Result<(), ModuleError>> + Send;

    /// Check that the destination is reachable; the default reports healthy.
    fn health(&self) -> impl Future<Output = Result<(), ModuleError>> + Send {
        async { Ok(()) }
    }

    /// Flush and close; called once when the server stops.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The connection type of destinations that take no `connection`. It cannot be built.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub enum NoConnection {}

/// What a destination knows about the webhook it is built for.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The webhook id.
    pub webhook_id: Arc<str>,
    /// The webhook's `data_type`.
    pub data_type: DataType,
    /// The name of the connections.json entry, if the webhook has one.
    pub connection_name: Option<String>,
    /// The directory that relative paths in destination configs resolve against and that
    /// they may not leave ([`crate::PipelineOptions::data_dir`]).
    pub data_dir: Arc<Path>,
    /// Clients shared between the destinations of this pipeline (one per connection).
    pub shared: SharedClients,
}

/// The object-safe twin of [`Module`], implemented for every `Module`.
pub trait DynModule: Send + Sync + 'static {
    /// The config's `module` string.
    fn kind(&self) -> &'static str;
    /// See [`Module::deliver`].
    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), ModuleError>>;
    /// See [`Module::health`].
    fn health(&self) -> BoxFuture<'_, Result<(), ModuleError>>;
    /// See [`Module::shutdown`].
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

impl<M: Module> DynModule for M {
    fn kind(&self) -> &'static str {
        M::KIND
    }

    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), ModuleError>> {
        Box::pin(Module::deliver(self, delivery))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), ModuleError>> {
        Box::pin(Module::health(self))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(Module::shutdown(self))
    }
}
