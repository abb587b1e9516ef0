//! A SQL destination around its driver: make the table (at start-up when the server is
//! reachable, else at the first delivery), turn each delivery into a row, queue it for the
//! next group insert, report health. A driver crate implements [`Writer`]; its destination
//! is `SqlDestination<ItsWriter>`, which is the [`Module`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use webhook_core::{BuildContext, BuildError, Delivery, ErrorClass, Module, ModuleError};

use crate::batch::Batcher;
use crate::config::{SqlConfig, StorageMode};
use crate::connection::SqlConnection;
use crate::dialect::Dialect;
use crate::error::SqlError;
use crate::row::Row;
use crate::table::Table;

/// How long start-up waits to make the table before leaving it to the first delivery.
const SETUP_WAIT: Duration = Duration::from_secs(3);
/// How long a health check waits.
const PING_TIMEOUT: Duration = Duration::from_secs(4);
/// Rows per `INSERT` at most (both servers take up to 65535 parameters per statement).
const MAX_BATCH_ROWS: usize = 64;

/// One driver's side of a SQL destination: its pool and its statements.
pub trait Writer: Sized + Send + Sync + 'static {
    /// The `module` name (`postgresql`).
    const KIND: &'static str;
    /// The module's other name (`postgres`).
    const ALIAS: &'static str;
    /// The connections.json `type`s it takes.
    const CONNECTION_TYPES: &'static [&'static str];
    /// The dialect of its statements.
    const DIALECT: Dialect;

    /// Make the writer of `table`, with the pool of `connection` (one per connections.json
    /// entry, shared through `context.shared`, connecting lazily).
    fn open(
        table: Table,
        connection: SqlConnection,
        context: &BuildContext,
    ) -> impl Future<Output = Result<Self, BuildError>> + Send;

    /// The table it writes.
    fn table(&self) -> &Table;

    /// Make the table, add `request_id` to an older one, make the indexes; once (later
    /// calls return at once after a success, try again after a failure).
    fn setup(&self) -> impl Future<Output = Result<(), SqlError>> + Send;

    /// Insert `rows` in one statement (one transaction): all of them are stored when it
    /// returns `Ok`, none when it returns an error. A row whose request id is already
    /// stored counts as written.
    fn write(&self, rows: &[Row]) -> impl Future<Output = Result<(), SqlError>> + Send;

    /// Check that the server answers.
    fn ping(&self) -> impl Future<Output = Result<(), SqlError>> + Send;

    /// The class of a driver error (the default: by SQLSTATE, [`crate::class_of`]).
    fn class_of(err: &sqlx::Error) -> ErrorClass {
        crate::class_of(err)
    }
}

/// A SQL destination: the [`Module`] of a driver's [`Writer`].
#[derive(Debug)]
pub struct SqlDestination<W> {
    writer: Arc<W>,
    batcher: Batcher,
}

/// A driver error as the pipeline sees it.
pub(crate) fn module_error<W: Writer>(err: SqlError) -> ModuleError {
    err.into_module_error(W::KIND, W::class_of)
}

impl<W: Writer> Module for SqlDestination<W> {
    const KIND: &'static str = W::KIND;
    const CONNECTION_TYPES: &'static [&'static str] = W::CONNECTION_TYPES;
    type Config = SqlConfig;
    type Connection = SqlConnection;

    fn validate(config: &SqlConfig, _: &BuildContext) -> Result<(), BuildError> {
        Table::plan(config, W::DIALECT).map(drop)
    }

    /// Open the writer and try to make the table (for a few seconds; a failure is logged
    /// and left to the first delivery); up to `pool_max_size` statements run at once.
    async fn build(
        config: SqlConfig,
        connection: Option<SqlConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection = connection
            .ok_or_else(|| BuildError::other(format!("a {} connection is required", W::KIND)))?;
        connection.check_pool()?;
        let concurrency = connection.pool_max_size as usize;
        let table = Table::plan(&config, W::DIALECT)?;
        let name = table.name().to_owned();
        let writer = W::open(table, connection, context).await?;
        if config.upsert && config.storage_mode == StorageMode::Json {
            tracing::warn!(webhook = %context.webhook_id, table = name, "`upsert` changes nothing in json storage mode (as in the original): every webhook adds a row");
        }
        match tokio::time::timeout(SETUP_WAIT, writer.setup()).await {
            Ok(Ok(())) => {
                tracing::info!(webhook = %context.webhook_id, table = name, "{} table ready", W::KIND);
            }
            Ok(Err(err)) => {
                let err = module_error::<W>(err);
                tracing::warn!(webhook = %context.webhook_id, table = name, error = %err.chain(), "{} table not ready at start-up; deliveries try again", W::KIND);
            }
            Err(_) => {
                tracing::warn!(webhook = %context.webhook_id, table = name, "{} not reachable at start-up; deliveries try again", W::KIND);
            }
        }
        let max_rows = MAX_BATCH_ROWS.min(65_535 / writer.table().width().max(1));
        let writer = Arc::new(writer);
        let batcher = Batcher::start(writer.clone(), max_rows, concurrency);
        Ok(Self { writer, batcher })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let table = self.writer.table();
        let row = Row::new(table, W::DIALECT, delivery)?;
        self.writer.setup().await.map_err(module_error::<W>)?;
        self.batcher.insert(row).await?;
        tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, table = table.name(), "row committed");
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        match tokio::time::timeout(PING_TIMEOUT, self.writer.ping()).await {
            Ok(result) => result.map_err(module_error::<W>),
            Err(_) => Err(ModuleError::unavailable(format!(
                "{} did not answer in time",
                W::KIND
            ))),
        }
    }

    // No `shutdown`: the pool is shared with the connection's other destinations, which a
    // reload may keep, and a closed sqlx pool never reopens. Its connections close when the
    // last destination using it is dropped; every delivery has committed before that.
}

/// Add the destination of `W` to `registry`, under its name and its alias.
pub fn register<W: Writer>(registry: &mut webhook_core::Registry) {
    registry.register_module_with_alias::<SqlDestination<W>>(W::ALIAS);
}
