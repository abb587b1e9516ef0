//! What a handler returned, turned into what the destination gets: `null`/`undefined`
//! skips it; an object's `body` (a string is sent as it is, anything else as JSON) and
//! `headers` (absent: the received ones) are the new request.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use rquickjs::{CatchResultExt, Coerced, Ctx, Value};
use webhook_core::DataType;
use webhook_core::transform::TransformOutput;

use crate::engine::Failure;

/// Convert the handler's return value.
pub(crate) fn convert<'js>(
    ctx: &Ctx<'js>,
    returned: &Value<'js>,
    max_output_bytes: usize,
) -> Result<TransformOutput, Failure<'js>> {
    if returned.is_null() || returned.is_undefined() {
        return Ok(TransformOutput::Skip);
    }
    if returned.is_promise() {
        return Err(Failure::Output(
            "returned a Promise: async handlers are not supported, return the request itself"
                .to_owned(),
        ));
    }
    let Some(request) = returned.as_object().filter(|_| !returned.is_array()) else {
        return Err(Failure::Output(format!(
            "returned {}, not a request object (return null to skip this destination)",
            kind(returned)
        )));
    };
    let body: Value<'_> = request.get("body").catch(ctx)?;
    let (text, data_type) = if body.is_null() || body.is_undefined() {
        return Err(Failure::Output(
            "returned a request without a body (return null to skip this destination)".to_owned(),
        ));
    } else if let Some(text) = body.as_string() {
        (text.to_string().catch(ctx)?, DataType::Blob)
    } else {
        match ctx.json_stringify(body).catch(ctx)? {
            Some(json) => (json.to_string().catch(ctx)?, DataType::Json),
            None => {
                return Err(Failure::Output(
                    "returned a body that cannot be JSON (a function or a symbol)".to_owned(),
                ));
            }
        }
    };
    if text.len() > max_output_bytes {
        return Err(Failure::Output(format!(
            "output is {} bytes, over max_output_bytes {max_output_bytes}",
            text.len()
        )));
    }
    let headers: Value<'_> = request.get("headers").catch(ctx)?;
    let headers = if headers.is_undefined() {
        None
    } else {
        Some(header_map(ctx, &headers)?)
    };
    Ok(TransformOutput::Deliver {
        body: Bytes::from(text),
        data_type,
        headers,
    })
}

/// `{"name": "value" | number | boolean | [values…] | null}` → headers (`null` leaves the
/// header out).
fn header_map<'js>(ctx: &Ctx<'js>, headers: &Value<'js>) -> Result<HeaderMap, Failure<'js>> {
    let Some(object) = headers.as_object().filter(|_| !headers.is_array()) else {
        return Err(Failure::Output(format!(
            "returned headers that are {}, not an object of name → value",
            kind(headers)
        )));
    };
    let mut map = HeaderMap::new();
    for entry in object.props::<String, Value<'_>>() {
        let (name, value) = entry.catch(ctx)?;
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Failure::Output(format!(
                "returned a header name {name:?} that HTTP does not allow"
            ))
        })?;
        let values: Vec<Value<'_>> = match value.as_array() {
            Some(array) => array
                .iter::<Value<'_>>()
                .collect::<Result<_, _>>()
                .catch(ctx)?,
            None => vec![value],
        };
        for value in values {
            if value.is_null() || value.is_undefined() {
                continue;
            }
            if !(value.is_string() || value.is_number() || value.is_bool()) {
                return Err(Failure::Output(format!(
                    "returned header {name:?} as {}: a value must be a string, a number or an array of them",
                    kind(&value)
                )));
            }
            let Coerced(text) = value.get::<Coerced<String>>().catch(ctx)?;
            let value = HeaderValue::from_str(&text).map_err(|_| {
                Failure::Output(format!(
                    "returned header {name:?} with a value HTTP does not allow"
                ))
            })?;
            map.append(header.clone(), value);
        }
    }
    Ok(map)
}

/// A value's kind, for messages: "a number", "an array"…
fn kind(value: &Value<'_>) -> &'static str {
    if value.is_array() {
        "an array"
    } else if value.is_function() {
        "a function"
    } else if value.is_object() {
        "an object"
    } else if value.is_string() {
        "a string"
    } else if value.is_number() {
        "a number"
    } else if value.is_bool() {
        "a boolean"
    } else {
        "a symbol or a big integer"
    }
}
