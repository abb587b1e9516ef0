use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlDatabaseError, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, MySqlPool};
use tokio::sync::OnceCell;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};
use webhook_sql::{Batcher, Dialect, Row, SqlConfig, StorageMode, Table, Writer};

use crate::config::{ACQUIRE_TIMEOUT, MySqlConnection};
use crate::error::MySqlError;

/// How long one statement may take before the delivery counts as failed (it is retried;
/// the request id keeps a late commit from becoming a second row).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long start-up waits to create the table before leaving it to the first delivery.
const SETUP_WAIT: Duration = Duration::from_secs(3);
/// Rows per `INSERT` at most (MySQL takes up to 65535 placeholders per statement).
const MAX_BATCH_ROWS: usize = 64;

/// The `mysql` destination.
#[derive(Debug)]
pub struct MySql {
    writer: Arc<MySqlWriter>,
    batcher: Batcher,
}

/// Inserts rows into one table through the shared pool; creates the table first.
#[derive(Debug)]
struct MySqlWriter {
    pool: MySqlPool,
    table: Table,
    ready: OnceCell<()>,
}

impl Module for MySql {
    const KIND: &'static str = "mysql";
    const CONNECTION_TYPES: &'static [&'static str] = &["mysql", "mariadb"];
    type Config = SqlConfig;
    type Connection = MySqlConnection;

    fn validate(config: &SqlConfig, _: &BuildContext) -> Result<(), BuildError> {
        Table::plan(config, Dialect::MySql).map(drop)
    }

    async fn build(
        config: SqlConfig,
        connection: Option<MySqlConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection =
            connection.ok_or_else(|| BuildError::other("a mysql connection is required"))?;
        let table = Table::plan(&config, Dialect::MySql)?;
        if config.upsert && config.storage_mode == StorageMode::Json {
            tracing::warn!(webhook = %context.webhook_id, table = table.name(), "`upsert` changes nothing in json storage mode (as in the original): every webhook adds a row");
        }
        let options = connection.options()?;
        let name = context.connection_name.clone().unwrap_or_default();
        let pool = context
            .shared
            .get_or_try_init(&name, || async {
                Ok(MySqlPoolOptions::new()
                    .min_connections(connection.pool_min_size)
                    .max_connections(connection.pool_max_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options))
            })
            .await?;
        let max_rows = MAX_BATCH_ROWS.min(65_535 / table.width().max(1));
        let writer = Arc::new(MySqlWriter {
            pool: MySqlPool::clone(&pool),
            table,
            ready: OnceCell::new(),
        });
        match tokio::time::timeout(SETUP_WAIT, writer.setup()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let err = ModuleError::from(err);
                tracing::warn!(webhook = %context.webhook_id, connection = %name, error = %err.chain(), "mysql table not ready at start-up; deliveries try again");
            }
            Err(_) => {
                tracing::warn!(webhook = %context.webhook_id, connection = %name, "mysql not reachable at start-up; deliveries try again");
            }
        }
        let batcher = Batcher::start(writer.clone(), max_rows, connection.pool_max_size as usize);
        Ok(Self { writer, batcher })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let row = Row::new(&self.writer.table, Dialect::MySql, delivery)?;
        self.batcher.insert(row).await?;
        tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, table = self.writer.table.name(), "row committed");
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        let ping = sqlx::query("SELECT 1").execute(&self.writer.pool);
        match tokio::time::timeout(ACQUIRE_TIMEOUT * 2, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(MySqlError::Insert {
                table: self.writer.table.name().to_owned(),
                source,
            }
            .into()),
            Err(_) => Err(MySqlError::Timeout.into()),
        }
    }

    async fn shutdown(&self) {
        self.writer.pool.close().await;
    }
}

impl MySqlWriter {
    /// Create the table, add `request_id` to a table made by the original, create the
    /// indexes; once.
    async fn setup(&self) -> Result<(), MySqlError> {
        self.ready
            .get_or_try_init(|| async {
                let setup = |source| MySqlError::Setup {
                    table: self.table.name().to_owned(),
                    source,
                };
                let mut conn = self.pool.acquire().await.map_err(setup)?;
                // (identifiers validated and quoted by `Table`; no values in DDL)
                sqlx::raw_sql(AssertSqlSafe(self.table.create_statement().to_owned()))
                    .execute(&mut *conn)
                    .await
                    .map_err(setup)?;
                let has_request_id: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = \
                     DATABASE() AND table_name = ? AND column_name = 'request_id'",
                )
                .bind(self.table.name())
                .fetch_one(&mut *conn)
                .await
                .map_err(setup)?;
                if has_request_id == 0 {
                    sqlx::raw_sql(AssertSqlSafe(self.table.add_request_id_statement()))
                        .execute(&mut *conn)
                        .await
                        .map_err(setup)?;
                }
                for statement in self.table.index_statements() {
                    match sqlx::raw_sql(AssertSqlSafe(statement.clone()))
                        .execute(&mut *conn)
                        .await
                    {
                        // MySQL has no CREATE INDEX IF NOT EXISTS: 1061 = it exists
                        Err(e) if error_number(&e) == Some(1061) => {}
                        result => {
                            result.map_err(setup)?;
                        }
                    }
                }
                tracing::info!(table = self.table.name(), "mysql table ready");
                Ok(())
            })
            .await
            .copied()
    }
}

impl Writer for MySqlWriter {
    async fn write(&self, rows: &[Row]) -> Result<(), ModuleError> {
        self.setup().await?;
        let sql = self.table.insert_statement(rows.len());
        // Identifiers validated and quoted by `Table`; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in rows {
            for value in &row.values {
                query = query.bind(value.as_deref());
            }
        }
        match tokio::time::timeout(STATEMENT_TIMEOUT, query.execute(&self.pool)).await {
            Ok(Ok(_)) => Ok(()),
            // A redelivery meets its own row. (In a batch, the statement fails whole and
            // the batcher inserts its rows one by one.)
            Ok(Err(e)) if rows.len() == 1 && is_request_id_conflict(&e) => Ok(()),
            Ok(Err(source)) => Err(MySqlError::Insert {
                table: self.table.name().to_owned(),
                source,
            }
            .into()),
            Err(_) => Err(MySqlError::Timeout.into()),
        }
    }
}

/// A duplicate key on `request_id` (1062): the row is already stored.
fn is_request_id_conflict(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .is_some_and(|my| my.number() == 1062 && my.message().trim_end().ends_with("request_id'"))
}

/// The server's error number, for a database error.
fn error_number(err: &sqlx::Error) -> Option<u16> {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number)
}
