use webhook_core::{ErrorClass, ModuleError};

/// What can go wrong storing a webhook in a SQL database.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// Making or migrating the table failed.
    #[error("cannot create or migrate table {table:?}")]
    Setup {
        /// The table.
        table: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The insert failed.
    #[error("insert into {table:?} failed")]
    Insert {
        /// The table.
        table: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The health check's query failed.
    #[error("the server did not answer the health check")]
    Ping(#[source] sqlx::Error),
}

impl SqlError {
    /// The failure as the pipeline sees it: classified by `class_of` (the driver's), with
    /// `engine` (`"postgresql"`, `"mysql"`) in the message. A unique violation while making
    /// the table is two destinations making it at once (PostgreSQL's catalog): the next
    /// attempt finds it.
    pub fn into_module_error(
        self,
        engine: &'static str,
        class_of: fn(&sqlx::Error) -> ErrorClass,
    ) -> ModuleError {
        let class = match &self {
            SqlError::Setup { source, .. } => match class_of(source) {
                ErrorClass::Permanent if is_integrity(source) => ErrorClass::Retryable,
                class => class,
            },
            SqlError::Insert { source, .. } => class_of(source),
            SqlError::Ping(_) => ErrorClass::Unavailable,
        };
        let message = match class {
            ErrorClass::Unavailable => format!("{engine} is unavailable"),
            ErrorClass::Retryable => format!("{engine} failed the insert (will retry)"),
            ErrorClass::Permanent => format!("{engine} refused the row"),
        };
        ModuleError::new(class, message).with_source(self)
    }
}

fn is_integrity(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code.starts_with("23"))
}
