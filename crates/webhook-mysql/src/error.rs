use sqlx::mysql::MySqlDatabaseError;
use webhook_core::{ErrorClass, ModuleError};

/// What can go wrong storing a webhook in MySQL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MySqlError {
    #[error("cannot create or migrate table {table:?}")]
    Setup {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("insert into {table:?} failed")]
    Insert {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("mysql did not answer")]
    Ping(#[source] sqlx::Error),
}

impl From<MySqlError> for ModuleError {
    fn from(err: MySqlError) -> Self {
        let class = match &err {
            MySqlError::Setup { source, .. } | MySqlError::Insert { source, .. } => {
                class_of(source)
            }
            MySqlError::Ping(_) => ErrorClass::Unavailable,
        };
        let message = match class {
            ErrorClass::Unavailable => "mysql is unavailable",
            ErrorClass::Retryable => "mysql failed the insert (will retry)",
            ErrorClass::Permanent => "mysql refused the row",
        };
        ModuleError::new(class, message).with_source(err)
    }
}

/// MySQL reports some errors with the catch-all SQLSTATE `HY000`; their numbers tell.
fn class_of(err: &sqlx::Error) -> ErrorClass {
    let number = err
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<MySqlDatabaseError>())
        .map(MySqlDatabaseError::number);
    match number {
        // too many connections (for the server, for this user); server shutting down;
        // connection killed
        Some(1040 | 1203 | 1226 | 1053 | 1927) => ErrorClass::Unavailable,
        // lock wait timeout, deadlock, query interrupted
        Some(1205 | 1213 | 1317) => ErrorClass::Retryable,
        // incorrect value, truncated value, data too long, invalid JSON, check constraint
        Some(1366 | 1292 | 1406 | 1264 | 3140 | 4025 | 3819) => ErrorClass::Permanent,
        _ => webhook_sql::class_of(err),
    }
}
