use serde::Deserialize;

/// `module-config` of `postgresql` and `mysql`: the Python original's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// The table (default `webhook_events`), created when missing.
    #[serde(default = "default_table")]
    pub table: String,
    /// `json` (default), `relational` or `hybrid`.
    #[serde(default)]
    pub storage_mode: StorageMode,
    /// Update the row whose `upsert_key` field matches instead of adding one (relational and
    /// hybrid modes; in json mode it changes nothing, as in the original).
    #[serde(default)]
    pub upsert: bool,
    /// The `schema.fields` key whose column decides an upsert (default `id`).
    #[serde(default = "default_upsert_key")]
    pub upsert_key: String,
    /// Store the headers in a `headers` JSON column (default true).
    #[serde(default = "default_true")]
    pub include_headers: bool,
    /// Accepted for compatibility; json mode always fills its `timestamp` column with the
    /// time the request was received.
    #[serde(default = "default_true")]
    pub include_timestamp: bool,
    /// `{"fields": {payload key: {column, type, constraints, default}}, "indexes": {name:
    /// {"columns": [...]}}}`.
    #[serde(default)]
    pub schema: Schema,
}

/// How a webhook is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// Payload and headers as JSON columns.
    #[default]
    Json,
    /// One column per `schema.fields` entry, taken from the payload's top-level keys.
    Relational,
    /// Both.
    Hybrid,
}

/// `schema`: fields (in order) and indexes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Payload key → column spec, in the order written.
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Index name → `{"columns": [...]}`.
    #[serde(default)]
    pub indexes: serde_json::Map<String, serde_json::Value>,
}

/// One entry of `schema.fields`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSpec {
    #[serde(default)]
    pub(crate) column: Option<String>,
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) constraints: Vec<String>,
    #[serde(default)]
    pub(crate) default: Option<serde_json::Value>,
}

/// One entry of `schema.indexes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexSpec {
    pub(crate) columns: Vec<String>,
}

fn default_table() -> String {
    "webhook_events".to_owned()
}

fn default_upsert_key() -> String {
    "id".to_owned()
}

fn default_true() -> bool {
    true
}
