use sqlx::MySqlPool;
use sqlx::mysql::{MySqlDatabaseError, MySqlPoolOptions};
use tokio::sync::OnceCell;
use webhook_core::{BuildContext, BuildError, ErrorClass};
use webhook_sql::{
    ACQUIRE_TIMEOUT, Dialect, Row, SqlConnection, SqlDestination, SqlError, Table, Writer,
};

use crate::config;

/// The `mysql` destination.
pub type MySql = SqlDestination<MySqlWriter>;

/// Inserts rows into one table through the connection's shared pool.
#[derive(Debug)]
pub struct MySqlWriter {
    pool: MySqlPool,
    table: Table,
    ready: OnceCell<()>,
}

impl Writer for MySqlWriter {
    const KIND: &'static str = "mysql";
    const ALIAS: &'static str = "mariadb";
    const CONNECTION_TYPES: &'static [&'static str] = &["mysql", "mariadb"];
    const DIALECT: Dialect = Dialect::MySql;

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
                Ok(MySqlPoolOptions::new()
                    .min_connections(connection.pool_min_size)
                    .max_connections(connection.pool_max_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(options))
            })
            .await?;
        Ok(Self {
            pool: MySqlPool::clone(&pool),
            table,
            ready: OnceCell::new(),
        })
    }

    fn table(&self) -> &Table {
        &self.table
    }

    /// `CREATE TABLE IF NOT EXISTS`, `request_id` added when `information_schema` has no
    /// such column, the indexes (MySQL has no `CREATE INDEX IF NOT EXISTS`: 1061 = exists).
    async fn setup(&self) -> Result<(), SqlError> {
        let setup = |source| SqlError::Setup {
            table: self.table.name().to_owned(),
            source,
        };
        self.ready
            .get_or_try_init(|| async {
                // (identifiers validated and quoted by `Table`; no values in DDL)
                sqlx::raw_sql(self.table.create_statement())
                    .execute(&self.pool)
                    .await
                    .map_err(setup)?;
                let has_request_id: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = \
                     DATABASE() AND table_name = ? AND column_name = 'request_id'",
                )
                .bind(self.table.name())
                .fetch_one(&self.pool)
                .await
                .map_err(setup)?;
                if has_request_id == 0 {
                    sqlx::raw_sql(&self.table.add_request_id_statement())
                        .execute(&self.pool)
                        .await
                        .map_err(setup)?;
                }
                for statement in self.table.index_statements() {
                    let created = sqlx::raw_sql(statement).execute(&self.pool).await;
                    match created {
                        Err(e) if error_number(&e) == Some(1061) => {}
                        other => {
                            other.map_err(setup)?;
                        }
                    }
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
            // A redelivery meets its own row. (A batch fails whole; the batcher then
            // inserts its rows one by one.)
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

    /// MySQL reports some errors with the catch-all SQLSTATE `HY000`; their numbers tell.
    fn class_of(err: &sqlx::Error) -> ErrorClass {
        match error_number(err) {
            // too many connections (for the server, for this user); server shutting down;
            // connection killed
            Some(1040 | 1203 | 1226 | 1053 | 1927) => ErrorClass::Unavailable,
            // lock wait timeout, deadlock, query interrupted
            Some(1205 | 1213 | 1317) => ErrorClass::Retryable,
            // incorrect value, truncated value, data too long, out of range, invalid JSON,
            // check constraint
            Some(1366 | 1292 | 1406 | 1264 | 3140 | 4025 | 3819) => ErrorClass::Permanent,
            _ => webhook_sql::class_of(err),
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
