//! What a SQL destination does around its driver: make the table (at start-up when the
//! server is reachable, else at the first delivery), turn each delivery into a row, queue
//! it for the next group insert, report health. A driver crate implements [`Writer`] and
//! delegates its `Module` methods to [`SqlDestination`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use webhook_core::{BuildContext, Delivery, ModuleError};

use crate::batch::Batcher;
use crate::config::{SqlConfig, StorageMode};
use crate::row::Row;
use crate::table::Table;

/// How long start-up waits to make the table before leaving it to the first delivery.
const SETUP_WAIT: Duration = Duration::from_secs(3);
/// How long a health check waits.
const PING_TIMEOUT: Duration = Duration::from_secs(4);
/// Rows per `INSERT` at most (both servers take up to 65535 parameters per statement).
const MAX_BATCH_ROWS: usize = 64;

/// One driver's side of a SQL destination: its pool and its statements.
pub trait Writer: Send + Sync + 'static {
    /// The table it writes.
    fn table(&self) -> &Table;

    /// Make the table, add `request_id` to an older one, make the indexes; once (later
    /// calls return at once after a success, try again after a failure).
    fn setup(&self) -> impl Future<Output = Result<(), ModuleError>> + Send;

    /// Insert `rows` in one statement (one transaction): all of them are stored when it
    /// returns `Ok`, none when it returns an error. A row whose request id is already
    /// stored counts as written.
    fn write(&self, rows: &[Row]) -> impl Future<Output = Result<(), ModuleError>> + Send;

    /// Check that the server answers.
    fn ping(&self) -> impl Future<Output = Result<(), ModuleError>> + Send;

    /// Close the pool.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// A SQL destination around its driver's [`Writer`].
#[derive(Debug)]
pub struct SqlDestination<W> {
    writer: Arc<W>,
    batcher: Batcher,
}

impl<W: Writer> SqlDestination<W> {
    /// Start the destination: try to make the table (for a few seconds; a failure is
    /// logged and left to the first delivery) and start the group insert, with up to
    /// `concurrency` statements in flight (the pool's size).
    pub async fn start(
        writer: W,
        config: &SqlConfig,
        concurrency: usize,
        context: &BuildContext,
    ) -> Self {
        let table = writer.table().name().to_owned();
        if config.upsert && config.storage_mode == StorageMode::Json {
            tracing::warn!(webhook = %context.webhook_id, table, "`upsert` changes nothing in json storage mode (as in the original): every webhook adds a row");
        }
        match tokio::time::timeout(SETUP_WAIT, writer.setup()).await {
            Ok(Ok(())) => tracing::info!(webhook = %context.webhook_id, table, "sql table ready"),
            Ok(Err(err)) => {
                tracing::warn!(webhook = %context.webhook_id, table, error = %err.chain(), "sql table not ready at start-up; deliveries try again");
            }
            Err(_) => {
                tracing::warn!(webhook = %context.webhook_id, table, "sql server not reachable at start-up; deliveries try again");
            }
        }
        let max_rows = MAX_BATCH_ROWS.min(65_535 / writer.table().width().max(1));
        let writer = Arc::new(writer);
        let batcher = Batcher::start(writer.clone(), max_rows, concurrency);
        Self { writer, batcher }
    }

    /// Store `delivery`'s row; resolves once its statement committed.
    pub async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let table = self.writer.table();
        let row = Row::new(table, table.dialect(), delivery)?;
        self.writer.setup().await?;
        self.batcher.insert(row).await?;
        tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, table = table.name(), "row committed");
        Ok(())
    }

    /// Whether the server answers.
    pub async fn health(&self) -> Result<(), ModuleError> {
        tokio::time::timeout(PING_TIMEOUT, self.writer.ping())
            .await
            .map_err(|_| ModuleError::unavailable("the sql server did not answer in time"))?
    }

    /// Close the pool.
    pub async fn shutdown(&self) {
        self.writer.close().await;
    }
}
