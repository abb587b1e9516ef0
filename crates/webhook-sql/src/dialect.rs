use crate::table::ColumnType;

/// The SQL dialect of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, `$n::type` placeholders, `ON CONFLICT`.
    Postgres,
    /// MySQL and MariaDB: `` `ident` ``, `?` placeholders, `ON DUPLICATE KEY UPDATE`.
    MySql,
}

impl Dialect {
    /// The longest identifier the server keeps.
    pub fn max_identifier(self) -> usize {
        match self {
            Dialect::Postgres => 63,
            Dialect::MySql => 64,
        }
    }

    /// `ident` quoted (identifiers are validated before; quotes are doubled all the same).
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
        }
    }

    /// The column type of `ty`; `unique` asks for one a unique index can cover (MySQL
    /// cannot index a whole TEXT).
    pub fn column_type(self, ty: ColumnType, unique: bool) -> &'static str {
        match (self, ty) {
            (Dialect::Postgres, ColumnType::Text) => "TEXT",
            (Dialect::Postgres, ColumnType::BigInt) => "BIGINT",
            (Dialect::Postgres, ColumnType::Double) => "DOUBLE PRECISION",
            (Dialect::Postgres, ColumnType::Bool) => "BOOLEAN",
            (Dialect::Postgres, ColumnType::Timestamp) => "TIMESTAMP WITH TIME ZONE",
            (Dialect::Postgres, ColumnType::Date) => "DATE",
            (Dialect::Postgres, ColumnType::Time) => "TIME",
            (Dialect::Postgres, ColumnType::Json) => "JSONB",
            (Dialect::Postgres, ColumnType::Uuid) => "UUID",
            (Dialect::MySql, ColumnType::Text) if unique => "VARCHAR(255)",
            (Dialect::MySql, ColumnType::Text) => "TEXT",
            (Dialect::MySql, ColumnType::BigInt) => "BIGINT",
            (Dialect::MySql, ColumnType::Double) => "DOUBLE",
            (Dialect::MySql, ColumnType::Bool) => "BOOLEAN",
            (Dialect::MySql, ColumnType::Timestamp) => "DATETIME(6)",
            (Dialect::MySql, ColumnType::Date) => "DATE",
            (Dialect::MySql, ColumnType::Time) => "TIME",
            (Dialect::MySql, ColumnType::Json) => "JSON",
            (Dialect::MySql, ColumnType::Uuid) => "CHAR(36)",
        }
    }

    /// The `n`th (1-based) parameter of a statement, for a value of column type `ty`. Every
    /// value is bound as text; PostgreSQL casts it to the column's type, MySQL converts.
    pub fn placeholder(self, n: usize, ty: ColumnType) -> String {
        match self {
            Dialect::Postgres => format!("${n}::{}", self.column_type(ty, false)),
            Dialect::MySql => "?".to_owned(),
        }
    }

    /// A boolean as the text the server converts.
    pub(crate) fn bool_text(self, value: bool) -> &'static str {
        match (self, value) {
            (Dialect::Postgres, true) => "true",
            (Dialect::Postgres, false) => "false",
            (Dialect::MySql, true) => "1",
            (Dialect::MySql, false) => "0",
        }
    }

    /// A point in time as the text the server converts (UTC).
    pub(crate) fn timestamp_text(self, at: jiff::Timestamp) -> String {
        match self {
            Dialect::Postgres => at.to_string(),
            Dialect::MySql => at.strftime("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        }
    }

    /// `DEFAULT now` for a timestamp column.
    pub(crate) fn now_default(self) -> &'static str {
        match self {
            Dialect::Postgres => "DEFAULT CURRENT_TIMESTAMP",
            Dialect::MySql => "DEFAULT CURRENT_TIMESTAMP(6)",
        }
    }

    /// The `id` column: a random UUID primary key.
    pub(crate) fn id_column(self) -> &'static str {
        match self {
            Dialect::Postgres => "\"id\" UUID PRIMARY KEY DEFAULT gen_random_uuid()",
            Dialect::MySql => "`id` CHAR(36) NOT NULL DEFAULT (UUID()) PRIMARY KEY",
        }
    }
}
