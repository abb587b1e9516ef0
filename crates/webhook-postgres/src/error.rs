use webhook_core::{ErrorClass, ModuleError};

/// What can go wrong storing a webhook in PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostgresError {
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
    #[error("postgresql did not answer")]
    Ping(#[source] sqlx::Error),
}

impl From<PostgresError> for ModuleError {
    fn from(err: PostgresError) -> Self {
        let class = match &err {
            // Two destinations creating one table at once collide in the catalog; the
            // next attempt finds it.
            PostgresError::Setup { source, .. } => match webhook_sql::class_of(source) {
                ErrorClass::Permanent if !is_integrity(source) => ErrorClass::Permanent,
                ErrorClass::Permanent => ErrorClass::Retryable,
                class => class,
            },
            PostgresError::Insert { source, .. } => webhook_sql::class_of(source),
            PostgresError::Ping(_) => ErrorClass::Unavailable,
        };
        let message = match class {
            ErrorClass::Unavailable => "postgresql is unavailable",
            ErrorClass::Retryable => "postgresql failed the insert (will retry)",
            ErrorClass::Permanent => "postgresql refused the row",
        };
        ModuleError::new(class, message).with_source(err)
    }
}

fn is_integrity(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code.starts_with("23"))
}
