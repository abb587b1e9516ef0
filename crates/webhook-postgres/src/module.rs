use sqlx::postgres::{PgDatabaseError, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use tokio::sync::OnceCell;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError};
use webhook_sql::{Dialect, Row, SqlConfig, SqlDestination, Table, Writer};

use crate::config::{ACQUIRE_TIMEOUT, PostgresConnection};
use crate::error::PostgresError;

/// The `postgresql` destination.
#[derive(Debug)]
pub struct Postgres {
    inner: SqlDestination<PgWriter>,
}

/// Inserts rows into one table through the connection's shared pool.
#[derive(Debug)]
struct PgWriter {
    pool: PgPool,
    table: Table,
    ready: OnceCell<()>,
}

impl Module for Postgres {
    const KIND: &'static str = "postgresql";
    const CONNECTION_TYPES: &'static [&'static str] = &["postgresql", "postgres"];
    type Config = SqlConfig;
    type Connection = PostgresConnection;

    fn validate(config: &SqlConfig, _: &BuildContext) -> Result<(), BuildError> {
        Table::plan(config, Dialect::Postgres).map(drop)
    }

    async fn build(
        config: SqlConfig,
        connection: Option<PostgresConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let connection =
            connection.ok_or_else(|| BuildError::other("a postgresql connection is required"))?;
        let table = Table::plan(&config, Dialect::Postgres)?;
        let options = connection.options()?;
        let name = context.connection_name.clone().unwrap_or_default();
        let pool = context
            .shared
            .get_or_try_init(&name, || async {
                Ok(PgPoolOptions::new()
                    .min_connections(connection.pool_min_size)
                    .max_connections(connection.pool_max_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options))
            })
            .await?;
        let writer = PgWriter {
            pool: PgPool::clone(&pool),
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

impl Writer for PgWriter {
    fn table(&self) -> &Table {
        &self.table
    }

    /// `CREATE TABLE IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS request_id`, the indexes.
    async fn setup(&self) -> Result<(), ModuleError> {
        let setup = |source| PostgresError::Setup {
            table: self.table.name().to_owned(),
            source,
        };
        self.ready
            .get_or_try_init(|| async {
                let mut statements = vec![
                    self.table.create_statement().to_owned(),
                    self.table.add_request_id_statement(),
                ];
                statements.extend(self.table.index_statements().iter().cloned());
                let mut conn = self.pool.acquire().await.map_err(setup)?;
                for statement in statements {
                    // (identifiers validated and quoted by `Table`; no values in DDL)
                    sqlx::raw_sql(AssertSqlSafe(statement))
                        .execute(&mut *conn)
                        .await
                        .map_err(setup)?;
                }
                Ok::<(), PostgresError>(())
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
            // (upsert mode: a redelivery whose upsert key is null meets its own row)
            Err(e) if rows.len() == 1 && is_request_id_conflict(&e) => Ok(()),
            Err(source) => Err(PostgresError::Insert {
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
            .map_err(|source| PostgresError::Ping(source).into())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// A unique violation on `request_id`: the row is already stored.
fn is_request_id_conflict(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.try_downcast_ref::<PgDatabaseError>())
        .is_some_and(|pg| {
            pg.code() == "23505"
                && pg
                    .detail()
                    .is_some_and(|d| d.starts_with("Key (request_id)="))
        })
}
