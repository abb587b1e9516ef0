//! The checked plan of one destination's table: which columns it has, where each value
//! comes from, and the statements that create it and insert into it.

use serde_json::Value;
use webhook_core::BuildError;

use crate::config::{FieldSpec, IndexSpec, SqlConfig, StorageMode};
use crate::dialect::Dialect;

/// The SQL type of a column, from a `schema.fields` entry's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `string`, `text`, and any type the original does not know.
    Text,
    /// `integer`, `int`.
    BigInt,
    /// `float`, `number`.
    Double,
    /// `boolean`, `bool`.
    Bool,
    /// `datetime`, `timestamp`.
    Timestamp,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `json`.
    Json,
    /// The `id` column.
    Uuid,
}

impl ColumnType {
    /// The original's type names (case-insensitive); unknown names are text, as there.
    fn from_name(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "integer" | "int" => Self::BigInt,
            "float" | "number" => Self::Double,
            "boolean" | "bool" => Self::Bool,
            "datetime" | "timestamp" => Self::Timestamp,
            "date" => Self::Date,
            "time" => Self::Time,
            "json" => Self::Json,
            _ => Self::Text,
        }
    }
}

/// Where the value of an inserted column comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// The webhook id.
    WebhookId,
    /// When the request was received (json mode's `timestamp`).
    ReceivedAt,
    /// The body as JSON text.
    Payload,
    /// The headers as a JSON object.
    Headers,
    /// The request id (unique).
    RequestId,
    /// A top-level key of the payload, or `default` when it is missing or null.
    Field { key: String, default: Option<Value> },
}

/// One column the destination inserts into.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: ColumnType,
    pub(crate) source: Source,
}

/// The checked table of one destination.
#[derive(Debug, Clone)]
pub struct Table {
    dialect: Dialect,
    name: String,
    pub(crate) columns: Vec<Column>,
    create: String,
    indexes: Vec<String>,
    /// The column an upsert conflicts on (relational and hybrid with `upsert`).
    upsert_column: Option<String>,
}

/// The built-in columns a field may not use as its own.
const RESERVED: &[&str] = &["id", "webhook_id", "request_id", "payload", "headers"];

impl Table {
    /// Check `config` and plan its table in `dialect`; errors name the `module-config` key.
    pub fn plan(config: &SqlConfig, dialect: Dialect) -> Result<Self, BuildError> {
        let table = checked_name(dialect, "table", &config.table)?;
        let q = |s: &str| dialect.quote(s);
        let mut fields = Vec::new();
        for (key, spec) in &config.schema.fields {
            let at = format!("schema.fields.{key}");
            if key.is_empty() || key.len() > 256 || key.contains(['\0', '\r', '\n']) {
                return Err(BuildError::key(
                    at,
                    "a payload key must be 1-256 characters without NUL, CR or LF",
                ));
            }
            let spec: FieldSpec = serde_json::from_value(spec.clone())
                .map_err(|e| BuildError::key(at.clone(), e.to_string()))?;
            let column = checked_name(
                dialect,
                &format!("{at}.column"),
                spec.column.as_deref().unwrap_or(key),
            )?;
            let reserved = RESERVED.contains(&column.to_ascii_lowercase().as_str());
            if reserved || (config.storage_mode == StorageMode::Json && column == "timestamp") {
                return Err(BuildError::key(
                    format!("{at}.column"),
                    format!(
                        "`{column}` is one of the table's own columns; give the field another \
                         `column` name (e.g. `event_{column}`)"
                    ),
                ));
            }
            fields.push((key.clone(), column, spec));
        }
        if fields
            .iter()
            .enumerate()
            .any(|(i, (_, c, _))| fields[..i].iter().any(|(_, d, _)| d == c))
        {
            return Err(BuildError::key(
                "schema.fields",
                "two fields use the same column",
            ));
        }
        if config.storage_mode == StorageMode::Relational && fields.is_empty() {
            return Err(BuildError::key(
                "schema.fields",
                "relational storage needs at least one field: {\"payload key\": {\"column\": \
                 …, \"type\": …}}",
            ));
        }
        let upsert_column = match config.storage_mode {
            StorageMode::Json => None,
            _ if !config.upsert => None,
            _ => Some(
                fields
                    .iter()
                    .find(|(key, _, _)| *key == config.upsert_key)
                    .map(|(_, column, _)| column.clone())
                    .ok_or_else(|| {
                        BuildError::key(
                            "upsert_key",
                            format!(
                                "`{}` is not a key of schema.fields; upsert needs the field \
                                 whose value identifies a row",
                                config.upsert_key
                            ),
                        )
                    })?,
            ),
        };
        let mut indexed: Vec<String> = Vec::new();
        let mut indexes = Vec::new();
        for (name, spec) in &config.schema.indexes {
            let at = format!("schema.indexes.{name}");
            let index = checked_name(dialect, &at, name)?;
            let spec: IndexSpec = serde_json::from_value(spec.clone())
                .map_err(|e| BuildError::key(at.clone(), e.to_string()))?;
            let mut columns = Vec::new();
            for column in &spec.columns {
                columns.push(checked_name(dialect, &format!("{at}.columns"), column)?);
            }
            if columns.is_empty() {
                continue;
            }
            indexed.extend(columns.iter().cloned());
            let list: Vec<String> = columns.iter().map(|c| q(c)).collect();
            indexes.push(match dialect {
                Dialect::Postgres => format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                    q(&index),
                    q(&table),
                    list.join(", ")
                ),
                Dialect::MySql => {
                    format!(
                        "CREATE INDEX {} ON {} ({})",
                        q(&index),
                        q(&table),
                        list.join(", ")
                    )
                }
            });
        }
        if config.storage_mode == StorageMode::Json && config.upsert && dialect == Dialect::Postgres
        {
            // As the original: upsert in json mode only adds a GIN index on the payload.
            if let Ok(index) = checked_name(dialect, "table", &format!("{table}_payload_gin")) {
                indexes.push(format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} USING GIN (payload)",
                    q(&index),
                    q(&table)
                ));
            }
        }

        let ts = dialect.column_type(ColumnType::Timestamp, false);
        let json = dialect.column_type(ColumnType::Json, false);
        let mut defs = vec![
            dialect.id_column().to_owned(),
            format!("{} TEXT NOT NULL", q("webhook_id")),
        ];
        let mut columns = vec![Column {
            name: "webhook_id".into(),
            ty: ColumnType::Text,
            source: Source::WebhookId,
        }];
        let field_named_created_at = fields.iter().any(|(_, c, _)| c == "created_at");
        let created_at = format!("{} {ts} {}", q("created_at"), dialect.now_default());
        let with_json = config.storage_mode != StorageMode::Relational;
        if config.storage_mode == StorageMode::Json {
            defs.push(format!("{} {ts} {}", q("timestamp"), dialect.now_default()));
            columns.push(Column {
                name: "timestamp".into(),
                ty: ColumnType::Timestamp,
                source: Source::ReceivedAt,
            });
        }
        if with_json {
            defs.push(format!("{} {json} NOT NULL", q("payload")));
            columns.push(Column {
                name: "payload".into(),
                ty: ColumnType::Json,
                source: Source::Payload,
            });
        }
        let headers =
            (config.storage_mode == StorageMode::Json || config.include_headers) && with_json;
        if config.storage_mode == StorageMode::Json {
            defs.push(format!("{} {json}", q("headers")));
            defs.push(created_at);
        } else {
            // A field called `created_at` (as in the original's docs) replaces the built-in.
            if !field_named_created_at {
                defs.push(created_at);
            }
            if headers {
                defs.push(format!("{} {json}", q("headers")));
            }
        }
        if headers {
            columns.push(Column {
                name: "headers".into(),
                ty: ColumnType::Json,
                source: Source::Headers,
            });
        }
        for (key, column, spec) in fields {
            let ty = ColumnType::from_name(spec.kind.as_deref().unwrap_or("string"));
            let mut constraints: Vec<&str> = Vec::new();
            for c in &spec.constraints {
                let c = c.trim().to_ascii_uppercase();
                let kept = match c.as_str() {
                    "NOT NULL" => "NOT NULL",
                    "UNIQUE" => "UNIQUE",
                    // No second primary key: the row's own `id` is one. A field marked so is
                    // what identifies a row, so it gets what a key has.
                    "PRIMARY KEY" => "UNIQUE NOT NULL",
                    _ => continue,
                };
                constraints.push(kept);
            }
            if upsert_column.as_deref() == Some(column.as_str())
                && !constraints.iter().any(|c| c.contains("UNIQUE"))
            {
                // An upsert needs a unique column to conflict on.
                constraints.push("UNIQUE");
            }
            let unique =
                constraints.iter().any(|c| c.contains("UNIQUE")) || indexed.contains(&column);
            let mut def = format!("{} {}", q(&column), dialect.column_type(ty, unique));
            for c in constraints {
                def.push(' ');
                def.push_str(c);
            }
            defs.push(def);
            columns.push(Column {
                name: column,
                ty,
                source: Source::Field {
                    key,
                    default: spec.default,
                },
            });
        }
        defs.push(request_id_definition(dialect));
        columns.push(Column {
            name: "request_id".into(),
            ty: ColumnType::Text,
            source: Source::RequestId,
        });
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            q(&table),
            defs.join(", ")
        );
        Ok(Self {
            dialect,
            name: table,
            columns,
            create,
            indexes,
            upsert_column,
        })
    }

    /// The dialect its statements are written in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The table's name (unquoted).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `CREATE TABLE IF NOT EXISTS …`.
    pub fn create_statement(&self) -> &str {
        &self.create
    }

    /// The `schema.indexes` (and json-mode upsert's GIN index); in MySQL without
    /// `IF NOT EXISTS`, so the driver ignores "duplicate key name".
    pub fn index_statements(&self) -> &[String] {
        &self.indexes
    }

    /// `ALTER TABLE … ADD COLUMN request_id …`, for a table made by the original.
    /// PostgreSQL's says `IF NOT EXISTS`; MySQL has none, so the driver looks first.
    pub fn add_request_id_statement(&self) -> String {
        let if_not_exists = match self.dialect {
            Dialect::Postgres => "IF NOT EXISTS ",
            Dialect::MySql => "",
        };
        format!(
            "ALTER TABLE {} ADD COLUMN {if_not_exists}{}",
            self.dialect.quote(&self.name),
            request_id_definition(self.dialect)
        )
    }

    /// The `INSERT` of `rows` rows: every value a bound parameter, in the order of
    /// [`crate::Row::values`] row after row. A row whose request id is already stored is
    /// left as it is (PostgreSQL: `ON CONFLICT DO NOTHING`; MySQL reports a duplicate key
    /// that the driver counts as stored), unless `upsert` rewrites it.
    pub fn insert_statement(&self, rows: usize) -> String {
        let d = self.dialect;
        let names: Vec<String> = self.columns.iter().map(|c| d.quote(&c.name)).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            d.quote(&self.name),
            names.join(", ")
        );
        let width = self.columns.len();
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for (i, column) in self.columns.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&d.placeholder(row * width + i + 1, column.ty));
            }
            sql.push(')');
        }
        let updated: Vec<&String> = self
            .columns
            .iter()
            .zip(&names)
            .filter(|(c, _)| c.name != "webhook_id")
            .map(|(_, n)| n)
            .collect();
        match (d, &self.upsert_column) {
            (Dialect::Postgres, Some(column)) => {
                let set: Vec<String> = updated
                    .iter()
                    .map(|n| format!("{n} = EXCLUDED.{n}"))
                    .collect();
                sql.push_str(&format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    d.quote(column),
                    set.join(", ")
                ));
            }
            (Dialect::Postgres, None) => {
                sql.push_str(&format!(
                    " ON CONFLICT ({}) DO NOTHING",
                    d.quote("request_id")
                ));
            }
            (Dialect::MySql, Some(_)) => {
                let set: Vec<String> = updated
                    .iter()
                    .map(|n| format!("{n} = VALUES({n})"))
                    .collect();
                sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", set.join(", ")));
            }
            (Dialect::MySql, None) => {}
        }
        sql
    }

    /// The number of bound values per row.
    pub fn width(&self) -> usize {
        self.columns.len()
    }
}

/// The `request_id` column: unique, so a redelivery adds no second row (nullable, so it can
/// be added to a table that already has rows).
fn request_id_definition(dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!("{} TEXT UNIQUE", dialect.quote("request_id")),
        Dialect::MySql => format!("{} VARCHAR(64) UNIQUE", dialect.quote("request_id")),
    }
}

/// An identifier as the original allows it: `^[a-zA-Z_][a-zA-Z0-9_]*$`, trimmed, not
/// longer than the server keeps.
fn checked_name(dialect: Dialect, key: &str, name: &str) -> Result<String, BuildError> {
    let name = name.trim();
    let mut chars = name.chars();
    let starts = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !starts || !rest {
        return Err(BuildError::key(
            key,
            format!(
                "`{name}` is not a valid SQL identifier (letters, digits and `_`, not \
                 starting with a digit)"
            ),
        ));
    }
    if name.len() > dialect.max_identifier() {
        return Err(BuildError::key(
            key,
            format!(
                "`{name}` is longer than {} characters",
                dialect.max_identifier()
            ),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> SqlConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn json_mode_statements() {
        let t = Table::plan(&config(serde_json::json!({})), Dialect::Postgres).unwrap();
        assert_eq!(
            t.create_statement(),
            "CREATE TABLE IF NOT EXISTS \"webhook_events\" (\"id\" UUID PRIMARY KEY DEFAULT \
             gen_random_uuid(), \"webhook_id\" TEXT NOT NULL, \"timestamp\" TIMESTAMP WITH TIME \
             ZONE DEFAULT CURRENT_TIMESTAMP, \"payload\" JSONB NOT NULL, \"headers\" JSONB, \
             \"created_at\" TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP, \"request_id\" \
             TEXT UNIQUE)"
        );
        assert_eq!(
            t.insert_statement(2),
            "INSERT INTO \"webhook_events\" (\"webhook_id\", \"timestamp\", \"payload\", \
             \"headers\", \"request_id\") VALUES ($1::TEXT, $2::TIMESTAMP WITH TIME ZONE, \
             $3::JSONB, $4::JSONB, $5::TEXT), ($6::TEXT, $7::TIMESTAMP WITH TIME ZONE, $8::JSONB, \
             $9::JSONB, $10::TEXT) ON CONFLICT (\"request_id\") DO NOTHING"
        );
        let m = Table::plan(&config(serde_json::json!({})), Dialect::MySql).unwrap();
        assert_eq!(
            m.insert_statement(1),
            "INSERT INTO `webhook_events` (`webhook_id`, `timestamp`, `payload`, `headers`, \
             `request_id`) VALUES (?, ?, ?, ?, ?)"
        );
    }

    #[test]
    fn relational_upsert() {
        let c = config(serde_json::json!({
            "table": "orders", "storage_mode": "relational", "upsert": true, "upsert_key": "event_id",
            "schema": {"fields": {
                "event_id": {"type": "string", "constraints": ["NOT NULL"]},
                "amount": {"column": "amount_cents", "type": "integer", "constraints": ["CHECK (x)"]},
                "created_at": {"type": "datetime"}
            }, "indexes": {"idx_amount": {"columns": ["amount_cents"]}}}
        }));
        let t = Table::plan(&c, Dialect::MySql).unwrap();
        assert_eq!(
            t.create_statement(),
            "CREATE TABLE IF NOT EXISTS `orders` (`id` CHAR(36) NOT NULL DEFAULT (UUID()) \
             PRIMARY KEY, `webhook_id` TEXT NOT NULL, `event_id` VARCHAR(255) NOT NULL UNIQUE, \
             `amount_cents` BIGINT, `created_at` DATETIME(6), `request_id` VARCHAR(64) UNIQUE)"
        );
        assert_eq!(
            t.index_statements(),
            ["CREATE INDEX `idx_amount` ON `orders` (`amount_cents`)"]
        );
        assert!(t.insert_statement(1).ends_with(
            "ON DUPLICATE KEY UPDATE `event_id` = VALUES(`event_id`), `amount_cents` = \
             VALUES(`amount_cents`), `created_at` = VALUES(`created_at`), `request_id` = \
             VALUES(`request_id`)"
        ));
        let p = Table::plan(&c, Dialect::Postgres).unwrap();
        assert!(p.insert_statement(1).ends_with(
            "ON CONFLICT (\"event_id\") DO UPDATE SET \"event_id\" = EXCLUDED.\"event_id\", \
             \"amount_cents\" = EXCLUDED.\"amount_cents\", \"created_at\" = \
             EXCLUDED.\"created_at\", \"request_id\" = EXCLUDED.\"request_id\""
        ));
    }

    #[test]
    fn hostile_identifiers_are_config_errors() {
        for (c, key) in [
            (
                serde_json::json!({"table": "x\"; DROP TABLE y; --"}),
                "table",
            ),
            (serde_json::json!({"table": "9lives"}), "table"),
            (serde_json::json!({"table": "a".repeat(64)}), "table"),
            (
                serde_json::json!({"storage_mode": "hybrid", "schema": {"fields": {"k": {"column": "a b"}}}}),
                "schema.fields.k.column",
            ),
            (
                serde_json::json!({"storage_mode": "hybrid", "schema": {"fields": {"id": {}}}}),
                "schema.fields.id.column",
            ),
            (
                serde_json::json!({"schema": {"indexes": {"i": {"columns": ["x`y"]}}}}),
                "schema.indexes.i.columns",
            ),
            (
                serde_json::json!({"storage_mode": "relational"}),
                "schema.fields",
            ),
            (
                serde_json::json!({"storage_mode": "relational", "upsert": true, "schema": {"fields": {"a": {}}}}),
                "upsert_key",
            ),
        ] {
            let err = Table::plan(&config(c.clone()), Dialect::Postgres).unwrap_err();
            assert_eq!(err.key, key, "{c}: {err:?}");
        }
    }
}
