//! The values of one webhook's row, as text the server converts to each column's type.

use serde_json::Value;
use webhook_core::{DataType, Delivery, ModuleError};

use crate::dialect::Dialect;
use crate::table::{ColumnType, Source, Table};

/// The bound values of one row, in the table's column order; `None` is SQL `NULL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// One value per inserted column.
    pub values: Vec<Option<String>>,
    /// The request id (also among `values`), to tell rows apart in errors.
    pub request_id: String,
}

impl Row {
    /// The row of `delivery` in `table`. A body that cannot be stored as JSON (a blob that
    /// is not UTF-8) is a permanent failure: retrying cannot change it.
    pub fn new(table: &Table, dialect: Dialect, delivery: &Delivery) -> Result<Self, ModuleError> {
        let needs_payload = table
            .columns
            .iter()
            .any(|c| matches!(c.source, Source::Payload | Source::Field { .. }));
        let payload_text = if needs_payload {
            Some(payload_json(delivery)?)
        } else {
            None
        };
        let parsed: Option<Value> = table
            .columns
            .iter()
            .any(|c| matches!(c.source, Source::Field { .. }))
            .then(|| match delivery.data_type {
                DataType::Json => serde_json::from_slice(&delivery.body).ok(),
                DataType::Blob => None,
            })
            .flatten();
        let request_id = delivery.request_id.to_string();
        let mut values = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            values.push(match &column.source {
                Source::WebhookId => Some(delivery.webhook_id.to_string()),
                Source::ReceivedAt => Some(
                    dialect.timestamp_text(
                        jiff::Timestamp::try_from(delivery.received_at)
                            .unwrap_or_else(|_| jiff::Timestamp::now()),
                    ),
                ),
                Source::Payload => payload_text.clone(),
                Source::Headers => serde_json::to_string(&delivery.header_map()).ok(),
                Source::RequestId => Some(request_id.clone()),
                Source::Field { key, default } => {
                    let value = parsed
                        .as_ref()
                        .and_then(|p| p.get(key))
                        .filter(|v| !v.is_null())
                        .or(default.as_ref().filter(|v| !v.is_null()));
                    value.map(|v| field_text(dialect, column.ty, v))
                }
            });
        }
        Ok(Self { values, request_id })
    }
}

/// The body as JSON text: a JSON body as received, a UTF-8 blob as a JSON string.
fn payload_json(delivery: &Delivery) -> Result<String, ModuleError> {
    let text = delivery.body_str().ok_or_else(|| {
        ModuleError::permanent(
            "the body is not UTF-8 text, so it cannot be stored in a JSON column",
        )
    })?;
    Ok(match delivery.data_type {
        DataType::Json => text.to_owned(),
        DataType::Blob => Value::String(text.to_owned()).to_string(),
    })
}

/// A payload value as the text the server converts to a column of type `ty`.
fn field_text(dialect: Dialect, ty: ColumnType, value: &Value) -> String {
    match (ty, value) {
        // The original's default for "now".
        (_, Value::String(s)) if s == "CURRENT_TIMESTAMP" => {
            dialect.timestamp_text(jiff::Timestamp::now())
        }
        (ColumnType::Json, v) => v.to_string(),
        (ColumnType::Timestamp, Value::String(s)) => match s.parse::<jiff::Timestamp>() {
            Ok(at) => dialect.timestamp_text(at),
            Err(_) => s.clone(),
        },
        (ColumnType::Timestamp, Value::Number(n)) => {
            // Seconds since the epoch, as many senders give times.
            let at = n
                .as_f64()
                .and_then(|s| jiff::Timestamp::from_microsecond((s * 1e6) as i64).ok());
            match at {
                Some(at) => dialect.timestamp_text(at),
                None => n.to_string(),
            }
        }
        (_, Value::String(s)) => s.clone(),
        (_, Value::Bool(b)) => dialect.bool_text(*b).to_owned(),
        (_, v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::SqlConfig;

    fn delivery(body: &str) -> Delivery {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-event", http::HeaderValue::from_static("push"));
        Delivery {
            webhook_id: Arc::from("wh"),
            request_id: uuid::Uuid::nil(),
            headers: Arc::new(headers),
            query: None,
            body: bytes::Bytes::from(body.to_owned()),
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            data_type: DataType::Json,
        }
    }

    #[test]
    fn hybrid_values() {
        let config: SqlConfig = serde_json::from_value(serde_json::json!({
            "storage_mode": "hybrid",
            "schema": {"fields": {
                "n": {"type": "integer"}, "ok": {"type": "bool"}, "at": {"type": "datetime"},
                "meta": {"type": "json"}, "missing": {"default": "x"}, "none": {}
            }}
        }))
        .unwrap();
        let table = Table::plan(&config, Dialect::MySql).unwrap();
        let body = r#"{"n": 5, "ok": true, "at": "2024-01-02T03:04:05Z", "meta": {"a": [1]}}"#;
        let row = Row::new(&table, Dialect::MySql, &delivery(body)).unwrap();
        assert_eq!(
            row.values,
            [
                Some("wh".into()),
                Some(body.into()),
                Some(r#"{"x-event":"push"}"#.into()),
                Some("5".into()),
                Some("1".into()),
                Some("2024-01-02 03:04:05.000000".into()),
                Some(r#"{"a":[1]}"#.into()),
                Some("x".into()),
                None,
                Some("00000000-0000-0000-0000-000000000000".into()),
            ]
        );
    }

    #[test]
    fn binary_blob_is_permanent() {
        let table = Table::plan(
            &serde_json::from_value(serde_json::json!({})).unwrap(),
            Dialect::Postgres,
        )
        .unwrap();
        let mut d = delivery("");
        d.data_type = DataType::Blob;
        d.body = bytes::Bytes::from_static(&[0xff, 0x00]);
        let err = Row::new(&table, Dialect::Postgres, &d).unwrap_err();
        assert!(!err.is_retryable());
        d.body = bytes::Bytes::from_static(b"plain \"text\"");
        let row = Row::new(&table, Dialect::Postgres, &d).unwrap();
        assert_eq!(row.values[2].as_deref(), Some(r#""plain \"text\"""#));
    }
}
