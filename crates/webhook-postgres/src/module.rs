use sqlx::PgPool;
use sqlx::postgres::{PgDatabaseError, PgPoolOptions};
use tokio::sync::OnceCell;
use webhook_core::{BuildContext, BuildError};
use webhook_sql::{
    ACQUIRE_TIMEOUT, Dialect, Row, SqlConnection, SqlDestination, SqlError, Table, Writer,
};

use crate::config;

/// The `postgresql` destination.
pub type Postgres = SqlDestination<PgWriter>;

/// Inserts rows into one table through the connection's shared pool.
#[derive(Debug)]
pub struct PgWriter {
    pool: PgPool,
    table: Table,
    ready: OnceCell<()>,
}

impl Writer for PgWriter {
    const KIND: &'static str = "postgresql";
    const ALIAS: &'static str = "postgres";
    const CONNECTION_TYPES: &'static [&'static str] = &["postgresql", "postgres"];
    const DIALECT: Dialect = Dialect::Postgres;

    async fn open(
        table: Table,
        connection: SqlConnection,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let options = config::options(&connection)?;
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
        Ok(Self {
            pool: PgPool::clone(&pool),
            table,
            ready: OnceCell::new(),
        })
    }

    fn table(&self) -> &Table {
        &self.table
    }

    /// `CREATE TABLE IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS request_id`, the indexes.
    async fn setup(&self) -> Result<(), SqlError> {
        let setup = |source| SqlError::Setup {
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
                for statement in statements {
                    // (identifiers validated and quoted by `Table`; no values in DDL)
                    sqlx::raw_sql(&statement)
                        .execute(&self.pool)
                        .await
                        .map_err(setup)?;
                }
                Ok(())
            })
            .await
            .copied()
    }

    async fn write(&self, rows: &[Row]) -> Result<(), SqlError> {
        let sql = self.table.insert_statement(rows.len());
        // Identifiers validated and quoted by `Table`; every value is bound.
        let mut query = sqlx::query(&sql);
        for row in rows {
            for value in &row.values {
                query = query.bind(value.as_deref());
            }
        }
        match query.execute(&self.pool).await {
            Ok(_) => Ok(()),
            // (upsert mode: a redelivery whose upsert key is null meets its own row)
            Err(e) if rows.len() == 1 && is_request_id_conflict(&e) => Ok(()),
            Err(source) => Err(SqlError::Insert {
                table: self.table.name().to_owned(),
                source,
            }),
        }
    }

    async fn ping(&self) -> Result<(), SqlError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(SqlError::Ping)
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
