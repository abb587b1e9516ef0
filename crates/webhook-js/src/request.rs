//! The `request` and `context` a handler gets, as JSON text for `JSON.parse` in the
//! program's context: `{method, path, query, parsed_query, headers, body, webhook_id,
//! request_id, received_at}` (Hookdeck's shape plus ours) and `{webhook_id, request_id,
//! received_at}`.

use serde::Serialize;
use std::collections::BTreeMap;
use webhook_core::transform::{TransformError, webhook_path};
use webhook_core::{DataType, Delivery};

use crate::engine::Input;

#[derive(Serialize)]
struct RequestFields<'a> {
    method: &'static str,
    path: String,
    /// The raw query string, as Hookdeck gives it.
    query: &'a str,
    parsed_query: serde_json::Map<String, serde_json::Value>,
    headers: BTreeMap<String, String>,
    webhook_id: &'a str,
    request_id: String,
    received_at: &'a str,
}

#[derive(Serialize)]
struct ContextFields<'a> {
    webhook_id: &'a str,
    request_id: String,
    received_at: &'a str,
}

/// The input of a run on `delivery`.
pub(crate) fn input(
    delivery: &Delivery,
    timeout: std::time::Duration,
    max_output_bytes: usize,
) -> Result<Input, TransformError> {
    let received_at = delivery.received_at_rfc3339();
    let body = delivery.body_str().ok_or_else(|| {
        TransformError(
            "js transform needs a JSON or UTF-8 text body; this one is binary".to_owned(),
        )
    })?;
    let fields = RequestFields {
        method: "POST",
        path: webhook_path(&delivery.webhook_id),
        query: delivery.query.as_deref().unwrap_or(""),
        parsed_query: delivery.query_map(),
        headers: delivery.header_map(),
        webhook_id: &delivery.webhook_id,
        request_id: delivery.request_id.to_string(),
        received_at: &received_at,
    };
    let mut request_json = serde_json::to_string(&fields).map_err(encode_error)?;
    // The body goes in as it is when it is JSON (the webhook checked it), so that the
    // program gets it parsed; other text goes in as a string.
    request_json.pop();
    request_json.push_str(",\"body\":");
    match delivery.data_type {
        DataType::Json => request_json.push_str(body),
        DataType::Blob => {
            request_json.push_str(&serde_json::to_string(body).map_err(encode_error)?);
        }
    }
    request_json.push('}');
    let context_json = serde_json::to_string(&ContextFields {
        webhook_id: &delivery.webhook_id,
        request_id: delivery.request_id.to_string(),
        received_at: &received_at,
    })
    .map_err(encode_error)?;
    let now_ms = delivery.received_at_millis() as f64;
    let id = delivery.request_id.as_u128();
    let seed = [0, 32, 64, 96].map(|shift| (id >> shift) as u32);
    Ok(Input {
        request_json,
        context_json,
        now_ms,
        seed,
        timeout,
        max_output_bytes,
    })
}

#[allow(clippy::needless_pass_by_value)] // the shape `map_err` passes
fn encode_error(err: serde_json::Error) -> TransformError {
    TransformError(format!("js transform could not encode the request: {err}"))
}
