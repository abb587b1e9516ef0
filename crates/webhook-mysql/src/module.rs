use sqlx::mysql::{MySqlDatabaseError, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, MySqlPool};
use tokio::sync::OnceCell;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};
use webhook_sql::{Dialect, Row, SqlConfig, SqlDestination, Table, Writer};

use crate::config::{ACQUIRE_TIMEOUT, MySqlConnection};
use crate::error::MySqlError;

/// The `mysql` destination.
#[derive(Debug)]
pub struct MySql {
    inner: SqlDestination<MySqlWriter>,
}

/// Inserts rows into one table through the connection's shared pool.
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
        let writer = MySqlWriter {
            pool: MySqlPool::clone(&pool),
            table,
            ready: OnceCell::new(),
        };
        let concurrency = connection.pool_max_size as usize;
        Ok(Self {
            inner: SqlDestination::start(writer, &config, concurrency, context).await,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        self.inner.deliver(delivery).await
    }

    async fn health(&self) -> Result<(), ModuleError> {
        self.inner.health().await
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

impl Writer for MySqlWriter {
    fn table(&self) -> &Table {
        &self.table
    }

    /// `CREATE TABLE IF NOT EXISTS`, `request_id` added when `information_schema` has no
    /// such column, the indexes (MySQL has no `CREATE INDEX IF NOT EXISTS`: 1061 = exists).
    async fn setup(&self) -> Result<(), ModuleError> {
        let setup = |source| MySqlError::Setup {
            table: self.table.name().to_owned(),
            source,
        };
        self.ready
            .get_or_try_init(|| async {
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
                    let created = sqlx::raw_sql(AssertSqlSafe(statement.clone()))
                        .execute(&mut *conn)
                        .await;
                    match created {
                        Err(e) if error_number(&e) == Some(1061) => {}
                        other => {
                            other.map_err(setup)?;
                        }
                    }
                }
                Ok::<(), MySqlError>(())
            })
            .await
            .copied()
            .map_err(ModuleError::from)
    }

    async fn write(&self, rows: &[Row]) -> Result<(), ModuleError> {
        let sql = self.table.insert_statement(rows.len());
        // Identifiers validated and quoted by `Table`; every value is bound.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in rows {
            for value in &row.values {
                query = query.bind(value.as_deref());
            }
        }
        match query.execute(&self.pool).await {
            Ok(_) => Ok(()),
            // A redelivery meets its own row. (A batch fails whole; the batcher then
            // inserts its rows one by one.)
            Err(e) if rows.len() == 1 && is_request_id_conflict(&e) => Ok(()),
            Err(source) => Err(MySqlError::Insert {
                table: self.table.name().to_owned(),
                source,
            }
            .into()),
        }
    }

    async fn ping(&self) -> Result<(), ModuleError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|source| MySqlError::Ping(source).into())
    }

    async fn close(&self) {
        self.pool.close().await;
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
